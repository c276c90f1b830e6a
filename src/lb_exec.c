/* Running a program without a shell: posix_spawnp with an argv (nothing is ever parsed by a
 * shell), a deadline, capped output and no zombie left behind. See lb_exec.h. */
#include "lb_exec.h"
#include "lb_buf.h"
#include "lb_time.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ERR_LINE_MAX 300
#define ERR_KEEP 4096 /* bytes of stderr read for its first line; the rest is drained */

static void close_pair(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

/* The first non-empty line of text, trimmed, at most ERR_LINE_MAX bytes (malloc'd) or NULL. */
static char *first_line(const char *text, size_t len)
{
    size_t i = 0, start, end;
    char *line;
    while (i < len && (text[i] == '\n' || text[i] == '\r' || text[i] == ' ' || text[i] == '\t'))
        i++;
    start = i;
    while (i < len && text[i] != '\n' && text[i] != '\r')
        i++;
    end = i;
    while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t'))
        end--;
    if (end == start)
        return NULL;
    if (end - start > ERR_LINE_MAX)
        end = start + ERR_LINE_MAX;
    if (!(line = malloc(end - start + 1)))
        return NULL;
    memcpy(line, text + start, end - start);
    line[end - start] = '\0';
    return line;
}

int lb_exec(const char *const *argv, double timeout, size_t max_out, lb_exec_result *r,
            lb_error *err)
{
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, rc, status = 0, killed = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    lb_buf out, errtext;
    double deadline = lb_time_mono() + timeout;
    pid_t pid;

    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        close_pair(out_pipe);
        close_pair(err_pipe);
        lb_error_set(err, LB_ERR_CONFIG, 0, "cannot run %s: no pipes (%s)", argv[0], strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0); /* its own group: a timeout kills its children too */
    rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;
    if (rc != 0) {
        close_pair(out_pipe);
        close_pair(err_pipe);
        r->not_found = rc == ENOENT || rc == EACCES;
        if (!r->not_found) {
            lb_error_set(err, LB_ERR_CONFIG, 0, "cannot run %s: %s", argv[0], strerror(rc));
            return -1;
        }
        return 0;
    }
    r->started = 1;
    lb_buf_init(&out);
    lb_buf_init(&errtext);

    /* Read both pipes until both are closed, the deadline passes or stdout is too large. */
    while (out_pipe[0] >= 0 || err_pipe[0] >= 0) {
        struct pollfd pfd[2];
        int n = 0, i, left_ms;
        double left = deadline - lb_time_mono();
        char chunk[4096];
        if (left <= 0) {
            r->timed_out = 1;
            break;
        }
        left_ms = (int)(left * 1000) + 1;
        if (out_pipe[0] >= 0)
            pfd[n].fd = out_pipe[0], pfd[n].events = POLLIN, pfd[n].revents = 0, n++;
        if (err_pipe[0] >= 0)
            pfd[n].fd = err_pipe[0], pfd[n].events = POLLIN, pfd[n].revents = 0, n++;
        if (poll(pfd, (nfds_t)n, left_ms) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (i = 0; i < n; i++) {
            ssize_t got;
            int is_out = pfd[i].fd == out_pipe[0];
            if (!pfd[i].revents)
                continue;
            got = read(pfd[i].fd, chunk, sizeof chunk);
            if (got <= 0) {
                if (got < 0 && errno == EINTR)
                    continue;
                close(pfd[i].fd);
                if (is_out)
                    out_pipe[0] = -1;
                else
                    err_pipe[0] = -1;
                continue;
            }
            if (is_out) {
                if (out.len + (size_t)got > max_out) {
                    r->too_large = 1;
                    break;
                }
                lb_buf_append(&out, chunk, (size_t)got);
            } else if (errtext.len < ERR_KEEP) {
                lb_buf_append(&errtext, chunk, (size_t)got);
            }
        }
        if (r->too_large)
            break;
    }
    if (r->timed_out || r->too_large) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        killed = 1;
    }
    close_pair(out_pipe);
    close_pair(err_pipe);
    /* Reap it (a process that closed its pipes may still be running: wait, then kill). */
    for (;;) {
        pid_t w = waitpid(pid, &status, killed ? 0 : WNOHANG);
        if (w < 0 && errno == EINTR)
            continue;
        if (w != 0)
            break;
        if (lb_time_mono() >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            killed = 1;
            r->timed_out = 1;
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (!killed && WIFEXITED(status))
        r->exit_code = WEXITSTATUS(status);
    /* Where posix_spawnp cannot report a failed exec (an interposed fork, as under a sanitizer),
     * the child exits 127 without a word, as a shell does for a command not found. */
    if (r->exit_code == 127 && out.len == 0 && errtext.len == 0) {
        r->started = 0;
        r->not_found = 1;
    }
    r->err_line = errtext.data ? first_line(errtext.data, errtext.len) : NULL;
    rc = out.oom || errtext.oom;
    lb_buf_wipe(&errtext);
    if (rc) {
        lb_buf_wipe(&out);
        lb_exec_result_free(r);
        lb_error_set(err, LB_ERR_CONFIG, 0, "cannot run %s: out of memory", argv[0]);
        return -1;
    }
    if (lb_buf_reserve(&out, 0) == 0) {
        r->out_len = out.len;
        r->out = lb_buf_take(&out);
    }
    lb_buf_wipe(&out);
    return 0;
}

void lb_exec_result_free(lb_exec_result *r)
{
    if (r->out) {
        explicit_bzero(r->out, r->out_len);
        free(r->out);
    }
    free(r->err_line);
    memset(r, 0, sizeof *r);
}
