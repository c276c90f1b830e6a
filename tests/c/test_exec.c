/* lb_exec: a program run without a shell — its output, exit status, stderr line; not found; killed
 * at the timeout and at the output cap, its process group with it; nothing left to reap. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lb_exec.h"
#include "lb_time.h"
#include "tap.h"

static int run(const char *const *argv, double timeout, size_t max_out, lb_exec_result *r)
{
    lb_error err = LB_ERROR_INIT;
    int rc = lb_exec(argv, timeout, max_out, r, &err);
    if (rc != 0)
        printf("# lb_exec: %s\n", err.message ? err.message : "?");
    lb_error_clear(&err);
    return rc;
}

/* Gone, or a zombie waiting for init to reap it (the sandbox's init may be slow to). */
static int dead(pid_t pid)
{
    char path[64], line[256], *close_paren;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (!(f = fopen(path, "r")))
        return 1;
    close_paren = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
    fclose(f);
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

int main(void)
{
    lb_exec_result r;
    double t0;

    printf("1..9\n");
    {
        const char *argv[] = {"printf", "%s|", "a b", "$(touch /tmp/lb-exec-pwned)", NULL};
        ok(run(argv, 5, 1024, &r) == 0 && r.started && r.exit_code == 0 && r.out &&
               strcmp(r.out, "a b|$(touch /tmp/lb-exec-pwned)|") == 0 && access("/tmp/lb-exec-pwned", F_OK) != 0,
           "arguments reach the program as they are: no shell");
        lb_exec_result_free(&r);
    }
    {
        const char *argv[] = {"lakebase-no-such-program", NULL};
        ok(run(argv, 5, 1024, &r) == 0 && !r.started && r.not_found, "a program not on PATH: not_found");
        lb_exec_result_free(&r);
    }
    {
        const char *argv[] = {"sh", "-c", "echo; echo '  first line  ' >&2; echo second >&2; exit 7", NULL};
        ok(run(argv, 5, 1024, &r) == 0 && r.exit_code == 7 && r.err_line && strcmp(r.err_line, "first line") == 0,
           "exit status and the first non-empty stderr line, trimmed");
        lb_exec_result_free(&r);
    }
    {
        char pidfile[] = "/tmp/lb-exec-test.XXXXXX", cmd[200];
        int fd = mkstemp(pidfile);
        FILE *f;
        long bg = 0;
        snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > %s; sleep 30", pidfile);
        {
            const char *argv[] = {"sh", "-c", cmd, NULL};
            t0 = lb_time_mono();
            ok(run(argv, 0.3, 1024, &r) == 0 && r.timed_out && r.exit_code == -1 && lb_time_mono() - t0 < 5,
               "killed at the timeout");
        }
        lb_exec_result_free(&r);
        usleep(100 * 1000);
        if (fd >= 0 && (f = fdopen(fd, "r")) != NULL) {
            if (fscanf(f, "%ld", &bg) != 1)
                bg = 0;
            fclose(f);
        }
        unlink(pidfile);
        ok(bg > 0 && dead((pid_t)bg), "its process group went with it (a background child too)");
    }
    {
        const char *argv[] = {"head", "-c", "5000000", "/dev/zero", NULL};
        ok(run(argv, 5, 4096, &r) == 0 && r.too_large && r.exit_code == -1, "killed past the output cap");
        lb_exec_result_free(&r);
    }
    {
        const char *argv[] = {"true", NULL};
        ok(run(argv, 5, 1024, &r) == 0 && r.exit_code == 0 && r.out && r.out_len == 0 && r.out[0] == '\0',
           "no output is an empty string");
        lb_exec_result_free(&r);
    }
    ok(waitpid(-1, NULL, WNOHANG) < 0, "no child left to reap");
    {
        const char *argv[] = {"sh", "-c", "cat", NULL}; /* stdin is /dev/null: cat ends at once */
        ok(run(argv, 5, 1024, &r) == 0 && r.exit_code == 0 && !r.timed_out, "stdin is /dev/null");
        lb_exec_result_free(&r);
    }
    if (test_no != 9)
        printf("# planned 9, ran %d\n", test_no);
    return failures ? 1 : 0;
}
