/* The process-wide connection pools: a registry keyed by settings->key (so every Lua state and
 * thread with identical settings shares one pool), lazy connects with the current credential,
 * fair (FIFO) waiting with acquire_timeout, idle/lifetime sweeps, clean checkins, and the
 * process_max_connections cap shared by the pools of one settings->cap_key.
 *
 * Locking: registry_mu guards the registry, every pool's refs and every cap's refs; p->mu guards
 * the rest of a pool; a cap's mu guards its count and members. Order: p->mu before cap->mu; a
 * cap only ever trylocks a pool's mu. Nothing slow (connecting, PQfinish, queries, credential
 * fetches) runs under any of them. */
#include "lb_pool_int.h"
#include "lb_time.h"
#include "lb_buf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A caller waiting for a connection; lives on its own stack. */
typedef struct waiter {
    pthread_cond_t cv;
    lb_conn *conn; /* handed over by a checkin */
    int slot;      /* or: permission to open a new connection */
    int closed;    /* or: the pool closed */
    struct waiter *next;
} waiter;

/* ------------------------------------------------------------------------------------------
 * The process cap: one count of the connections held (open or being opened) by every pool of a
 * cap_key that set process_max_connections, so that it bounds them together (the primary and its
 * reader, pools that differ only in max or timeouts). A pool opens a connection only while the
 * count is below its own process_max_connections; a pool without one (0) has no cap and is not
 * counted (p->cap is NULL, and the cap_* helpers do nothing for it). A caller that
 * finds no room waits for a connection of the cap's pools to close or go idle, and takes an idle
 * connection of another pool (closing it) rather than wait for that pool's idle_timeout.
 * ---------------------------------------------------------------------------------------- */

#define CAP_RECHECK 0.05 /* seconds: a cap waiter looks again at least this often */

typedef struct lb_cap {
    struct lb_cap *next; /* registry link */
    int refs;            /* registry_mu: one per member pool */
    char *key;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* broadcast when gen moves */
    unsigned gen;        /* moves when room may have appeared: a connection closed or went idle */
    int count;           /* connections the member pools hold or are opening */
    int waiting;         /* __atomic: callers waiting for room (a hint read without mu) */
    lb_pool *members;    /* linked through cap_next */
} lb_cap;

struct lb_pool {
    lb_pool *next; /* registry link */
    int refs;      /* registry_mu */
    lb_settings *s;
    lb_credentials *cred; /* NULL with password auth */

    pthread_mutex_t mu;
    lb_conn *idle; /* most recently used first */
    int nidle, total, in_use;
    waiter *head, *tail;
    int nwaiting;
    int closed;
    int pooler; /* a transaction-mode pooler was seen: no prepared statements from now on */
    uint64_t connects, connect_failures;
    /* Connect backoff shared by every caller of this pool: after a transient failure nobody
     * tries again before not_before, so waiters share the attempts (at most `max` per step). */
    int fail_streak;
    double not_before;   /* monotonic */
    lb_error last_fail;  /* the last transient connect failure, for callers that give up */
    lb_cap *cap;         /* the process cap this pool counts against (set once), or NULL */
    lb_pool *cap_next;   /* cap->mu: member link */
    int cap_waiting;     /* __atomic: this pool's callers waiting for room under the cap */
    lb_metrics *m;       /* this pool's series set (lb_metrics.c) */
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static lb_pool *registry;
static lb_cap *caps; /* registry_mu */

/* The cap for key, created on first use. Called with registry_mu held. */
static lb_cap *cap_acquire_locked(const char *key)
{
    lb_cap *g;
    pthread_condattr_t attr;

    for (g = caps; g; g = g->next)
        if (strcmp(g->key, key) == 0) {
            g->refs++;
            return g;
        }
    if (!(g = calloc(1, sizeof *g)) || !(g->key = strdup(key))) {
        free(g);
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &attr);
    pthread_condattr_destroy(&attr);
    g->refs = 1;
    g->next = caps;
    caps = g;
    return g;
}

static void cap_release(lb_cap *g)
{
    lb_cap **pg;
    int last;

    pthread_mutex_lock(&registry_mu);
    last = --g->refs == 0;
    if (last)
        for (pg = &caps; *pg; pg = &(*pg)->next)
            if (*pg == g) {
                *pg = g->next;
                break;
            }
    pthread_mutex_unlock(&registry_mu);
    if (last) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g->key);
        free(g);
    }
}

static void cap_join(lb_pool *p)
{
    pthread_mutex_lock(&p->cap->mu);
    p->cap_next = p->cap->members;
    p->cap->members = p;
    pthread_mutex_unlock(&p->cap->mu);
}

/* p leaves its cap, giving back the `held` connections it still counted. */
static void cap_leave(lb_pool *p, int held)
{
    lb_cap *g = p->cap;
    lb_pool **pm;

    pthread_mutex_lock(&g->mu);
    for (pm = &g->members; *pm; pm = &(*pm)->cap_next)
        if (*pm == p) {
            *pm = p->cap_next;
            break;
        }
    g->count -= held;
    g->gen++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    cap_release(g);
}

/* Room for one more connection of p under the cap: 1 and counted, or 0. With `seen`, a caller
 * that will wait (wait_cap) is registered, and *seen is the generation it waits to move. Called
 * with p->mu held. */
static int cap_take_locked(lb_pool *p, unsigned *seen)
{
    lb_cap *g = p->cap;
    int room;

    if (!g)
        return 1;
    pthread_mutex_lock(&g->mu);
    room = p->s->process_max_connections == 0 || g->count < p->s->process_max_connections;
    if (room) {
        g->count++;
    } else if (seen) {
        *seen = g->gen;
        __atomic_add_fetch(&g->waiting, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&p->cap_waiting, 1, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&g->mu);
    return room;
}

/* n connections of p closed (or a slot was given up): room for cap waiters. */
static void cap_put(lb_pool *p, int n)
{
    lb_cap *g = p->cap;

    if (!g || n <= 0)
        return;
    pthread_mutex_lock(&g->mu);
    g->count -= n;
    g->gen++;
    if (__atomic_load_n(&g->waiting, __ATOMIC_SEQ_CST) > 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A connection of p went idle: a cap waiter (of p, or of another pool that may close it) looks
 * again. Called without locks; costs one atomic read when nobody waits. */
static void cap_note_idle(lb_pool *p)
{
    lb_cap *g = p->cap;

    if (!g || __atomic_load_n(&g->waiting, __ATOMIC_SEQ_CST) == 0)
        return;
    pthread_mutex_lock(&g->mu);
    g->gen++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Takes the oldest idle connection of another pool of the cap (to be closed by the caller), so
 * an idle connection there never keeps a caller here waiting. Called with g->mu held; pools are
 * only trylocked (their lock comes first in the order). */
static lb_conn *cap_evict_locked(lb_cap *g, lb_pool *self)
{
    lb_pool *m;

    for (m = g->members; m; m = m->cap_next) {
        lb_conn **pc, *c;
        if (m == self || pthread_mutex_trylock(&m->mu) != 0)
            continue;
        if (!m->idle) {
            pthread_mutex_unlock(&m->mu);
            continue;
        }
        for (pc = &m->idle; (*pc)->next; pc = &(*pc)->next)
            ; /* the list is most recently used first: the last one is the oldest */
        c = *pc;
        *pc = NULL;
        m->nidle--;
        m->total--;
        g->count--;
        pthread_mutex_unlock(&m->mu);
        return c;
    }
    return NULL;
}


/* ------------------------------------------------------------------------------------------
 * Registry
 * ---------------------------------------------------------------------------------------- */

static void pool_destroy(lb_pool *p)
{
    lb_conn *c = p->idle, *next;
    for (; c; c = next) {
        next = c->next;
        lb_conn_close(c);
    }
    if (p->cap)
        cap_leave(p, p->total); /* only idle ones are left: checked-out connections hold refs */
    pthread_mutex_destroy(&p->mu);
    lb_error_clear(&p->last_fail);
    if (p->cred)
        lb_credentials_release(p->cred);
    lb_settings_free(p->s);
    free(p);
}

lb_pool *lb_pool_acquire(const lb_settings *s, lb_error *err)
{
    lb_pool *p;

    lb_settings *found = NULL;

    if (!s || !s->key) {
        lb_error_set(err, LB_ERR_CONFIG, 0, "settings without a key (use lb_settings_load)");
        return NULL;
    }
    /* No host or user given: read them from the workspace (once per process, cached by the
     * credential entry) before the registry lock. The key is the one of the settings as given, so
     * every later acquire finds this pool without asking again. */
    if (!s->host || !s->user) {
        if (!(found = lb_settings_copy(s))) {
            lb_error_set(err, LB_ERR_POOL, 0, "out of memory creating a pool");
            return NULL;
        }
        if (lb_settings_discover(found, err) != 0) {
            lb_settings_free(found);
            return NULL;
        }
        s = found;
    }
    pthread_mutex_lock(&registry_mu);
    for (p = registry; p; p = p->next) {
        if (strcmp(p->s->key, s->key) == 0) {
            p->refs++;
            pthread_mutex_unlock(&registry_mu);
            lb_settings_free(found);
            return p;
        }
    }
    p = calloc(1, sizeof *p);
    if (!p || !(p->s = lb_settings_copy(s))) {
        free(p);
        pthread_mutex_unlock(&registry_mu);
        lb_settings_free(found);
        lb_error_set(err, LB_ERR_POOL, 0, "out of memory creating a pool");
        return NULL;
    }
    if (s->auth != LB_AUTH_PASSWORD && !(p->cred = lb_credentials_acquire(s, err))) {
        lb_settings_free(p->s);
        free(p);
        pthread_mutex_unlock(&registry_mu);
        lb_settings_free(found);
        return NULL;
    }
    if (s->process_max_connections > 0 &&
        !(p->cap = cap_acquire_locked(s->cap_key ? s->cap_key : s->key))) {
        if (p->cred)
            lb_credentials_release(p->cred);
        lb_settings_free(p->s);
        free(p);
        pthread_mutex_unlock(&registry_mu);
        lb_settings_free(found);
        lb_error_set(err, LB_ERR_POOL, 0, "out of memory creating a pool");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    /* Lakebase's pooled hosts are transaction-mode poolers: known from the start. */
    p->pooler = strstr(p->s->host, "-pooler.") != NULL;
    if (p->cap)
        cap_join(p);
    p->m = lb_metrics_for_pool(s);
    p->refs = 1;
    p->next = registry;
    registry = p;
    pthread_mutex_unlock(&registry_mu);
    lb_settings_free(found);
    return p;
}

void lb_pool_retain(lb_pool *p)
{
    pthread_mutex_lock(&registry_mu);
    p->refs++;
    pthread_mutex_unlock(&registry_mu);
}

void lb_pool_release(lb_pool *p)
{
    lb_pool **pp;
    int last;

    if (!p)
        return;
    pthread_mutex_lock(&registry_mu);
    last = --p->refs == 0;
    if (last) {
        for (pp = &registry; *pp; pp = &(*pp)->next) {
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&registry_mu);
    if (last)
        pool_destroy(p); /* checked-out connections hold references: none is out now */
}

const lb_settings *lb_pool_settings(lb_pool *p)
{
    return p->s;
}

/* ------------------------------------------------------------------------------------------
 * Connecting
 * ---------------------------------------------------------------------------------------- */

/* Opens one connection with the current credential; an authentication failure invalidates the
 * credential and tries once more with a fresh one (a second refusal is final: not retriable).
 * *failure: an LB_OPEN_* reason (credential errors count as permanent: the credential layer has
 * already retried within connect_timeout). */
static lb_conn *pool_connect(lb_pool *p, double deadline, int *failure, lb_error *err)
{
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        char *token = NULL;
        double expires_at = 0;
        lb_conn *c;

        *failure = LB_OPEN_OK;
        if (p->cred && lb_credentials_get(p->cred, &token, &expires_at, err) != 0) {
            pthread_mutex_lock(&p->mu);
            p->connect_failures++;
            pthread_mutex_unlock(&p->mu);
            *failure = LB_OPEN_PERMANENT;
            return NULL;
        }
        c = lb_conn_open(p->s, p->cred ? token : p->s->password, deadline, failure, err);
        pthread_mutex_lock(&p->mu);
        if (c && p->pooler)
            lb_conn_no_prepare(c);
        if (c)
            p->connects++;
        else
            p->connect_failures++;
        pthread_mutex_unlock(&p->mu);
        if (c || *failure != LB_OPEN_AUTH || !p->cred || attempt == 1) {
            lb_wipe_free(token);
            return c;
        }
        lb_credentials_invalidate(p->cred, token);
        lb_wipe_free(token);
        lb_error_clear(err);
    }
    return NULL;
}

#define CONNECT_BACKOFF_BASE 0.05 /* first pause after a transient connect failure, doubled */
#define CONNECT_BACKOFF_CAP 0.5   /* so a server back from a restart is found within ~0.5 s */

/* The error of a caller that gave up: the last failure, what was tried, and for 53300 what to
 * change. */
static void give_up(lb_pool *p, int attempts, double started, lb_error *err)
{
    lb_error last = LB_ERROR_INIT;

    pthread_mutex_lock(&p->mu);
    if (p->last_fail.kind != LB_OK) {
        lb_error_set(&last, p->last_fail.kind, 1, "%s", p->last_fail.message);
        memcpy(last.sqlstate, p->last_fail.sqlstate, sizeof last.sqlstate);
    }
    pthread_mutex_unlock(&p->mu);
    if (last.kind == LB_OK && err->kind != LB_OK)
        lb_error_move(&last, err);
    if (strcmp(last.sqlstate, "53300") == 0) {
        lb_error_set(err, LB_ERR_CONNECT, 1,
                     "the compute's connection limit was reached (SQLSTATE 53300: %s); gave up after "
                     "%d attempts within acquire_timeout %g s", last.message, attempts,
                     p->s->acquire_timeout);
        lb_error_set_field(&err->hint,
                           "every process opens up to `max` connections: lower max or the number of "
                           "processes, or use a larger compute size (a higher max_connections)");
        strcpy(err->sqlstate, "53300");
    } else {
        lb_error_set(err, LB_ERR_CONNECT, 1, "%s (gave up after %d attempt%s in %.1f s; "
                     "acquire_timeout %g s)", last.message ? last.message : "could not connect",
                     attempts, attempts == 1 ? "" : "s", lb_time_mono() - started,
                     p->s->acquire_timeout);
        memcpy(err->sqlstate, last.sqlstate, sizeof err->sqlstate);
    }
    lb_error_clear(&last);
    lb_observe_gave_up(p->m, lb_time_mono() - started, attempts, err);
}

/* Connects, retrying transient failures (refused, reset, timeouts, 57P01-57P03, 53300) with
 * jittered exponential backoff until `deadline` (the caller's acquire_timeout). The backoff is the
 * pool's, not the caller's: every slot holder waits for the same not_before, so a crowd of callers
 * makes at most `max` attempts per step. */
static lb_conn *connect_retrying(lb_pool *p, double deadline, lb_error *err)
{
    double started = lb_time_mono();
    int attempts = 0;

    for (;;) {
        double now = lb_time_mono(), not_before, delay;
        int failure, failing;
        lb_conn *c;

        pthread_mutex_lock(&p->mu);
        not_before = p->not_before;
        failing = p->fail_streak > 0;
        pthread_mutex_unlock(&p->mu);
        if (failing && now >= deadline) { /* e.g. a slot handed over as this caller's time ran out */
            give_up(p, attempts, started, err);
            return NULL;
        }
        if (not_before > now) {
            if (not_before >= deadline) {
                lb_time_sleep(deadline - now); /* fail at acquire_timeout, not before it */
                give_up(p, attempts, started, err);
                return NULL;
            }
            lb_time_sleep(not_before - now);
            continue; /* another caller may have failed meanwhile and moved it */
        }
        attempts++;
        now = lb_time_mono();
        c = pool_connect(p, deadline, &failure, err);
        lb_observe_connect(p->m, c, lb_time_mono() - now, attempts, failure == LB_OPEN_TRANSIENT, err);
        pthread_mutex_lock(&p->mu);
        if (c) {
            p->fail_streak = 0;
            p->not_before = 0;
            lb_error_clear(&p->last_fail);
        } else if (failure == LB_OPEN_TRANSIENT) {
            p->fail_streak++;
            delay = CONNECT_BACKOFF_BASE * (double)(1u << (p->fail_streak < 8 ? p->fail_streak - 1 : 7));
            delay = (delay > CONNECT_BACKOFF_CAP ? CONNECT_BACKOFF_CAP : delay) * lb_time_jitter();
            if (lb_time_mono() + delay > p->not_before)
                p->not_before = lb_time_mono() + delay;
            /* The server's reason (53300, 57P03) says more than a connect cut short by the
             * deadline: a failure without SQLSTATE does not replace one with it in a streak. */
            if (!(err->sqlstate[0] == '\0' && p->fail_streak > 1 && p->last_fail.sqlstate[0])) {
                lb_error_clear(&p->last_fail);
                lb_error_set(&p->last_fail, err->kind, 1, "%s", err->message ? err->message : "failed");
                memcpy(p->last_fail.sqlstate, err->sqlstate, sizeof p->last_fail.sqlstate);
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (c) {
            c->m = p->m;
            c->slow_query = p->s->slow_query_ms / 1000.0;
            return c;
        }
        if (failure != LB_OPEN_TRANSIENT) {
            if (failure == LB_OPEN_AUTH)
                err->retriable = 0; /* refused again after the credential refresh */
            return NULL;
        }
        if (lb_time_mono() >= deadline - 0.001) {
            give_up(p, attempts, started, err);
            return NULL;
        }
        lb_error_clear(err);
    }
}

/* ------------------------------------------------------------------------------------------
 * Checkout / checkin
 * ---------------------------------------------------------------------------------------- */

static int expired(const lb_pool *p, const lb_conn *c, double now)
{
    (void)p;
    return c->lifetime > 0 && now - c->created > c->lifetime;
}

/* Moves idle connections past idle_timeout or max_lifetime to *out (closed by the caller,
 * outside the lock). */
static void sweep_locked(lb_pool *p, double now, lb_conn **out)
{
    lb_conn **pc = &p->idle;
    int swept = 0;
    while (*pc) {
        lb_conn *c = *pc;
        /* min_idle connections stay past idle_timeout (a warm start), not past max_lifetime. */
        if ((p->s->idle_timeout > 0 && now - c->last_used > p->s->idle_timeout &&
             p->nidle > p->s->min_idle) ||
            expired(p, c, now)) {
            *pc = c->next;
            c->next = *out;
            *out = c;
            p->nidle--;
            p->total--;
            swept++;
        } else {
            pc = &c->next;
        }
    }
    cap_put(p, swept);
}

static void close_list(lb_conn *c)
{
    lb_conn *next;
    for (; c; c = next) {
        next = c->next;
        lb_conn_close(c);
    }
}

static waiter *dequeue_locked(lb_pool *p)
{
    waiter *w = p->head;
    if (w) {
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        p->nwaiting--;
    }
    return w;
}

/* A slot became free (a connection was discarded): the first waiter may open a new one, under
 * the same place in the process cap; without a waiter the cap gets it back. */
static void slot_freed_locked(lb_pool *p)
{
    waiter *w = dequeue_locked(p);
    if (w) {
        p->total++;
        p->in_use++;
        w->slot = 1;
        pthread_cond_signal(&w->cv);
    } else {
        cap_put(p, 1);
    }
}

/* `seconds` from now (at most 1e7: a cond wait far enough, and no overflow) as a timespec. */
static void deadline_after(struct timespec *ts, double seconds)
{
    lb_time_timespec(lb_time_mono() + (seconds < 0 ? 0 : seconds > 1e7 ? 1e7 : seconds), ts);
}

static void unlink_waiter_locked(lb_pool *p, waiter *me)
{
    waiter **pw = &p->head, *prev = NULL;
    for (; *pw; prev = *pw, pw = &(*pw)->next) {
        if (*pw == me) {
            *pw = me->next;
            if (p->tail == me)
                p->tail = prev;
            p->nwaiting--;
            return;
        }
    }
}

/* Waits (FIFO) for a connection or a slot. Returns 1 with *got set (or *slot), 0 on timeout or
 * close with err set. Called and returns with p->mu held. */
static int wait_locked(lb_pool *p, double until, lb_conn **got, int *slot, lb_error *err)
{
    waiter me;
    pthread_condattr_t attr;
    struct timespec deadline;
    int rc = 0;

    memset(&me, 0, sizeof me);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&me.cv, &attr);
    pthread_condattr_destroy(&attr);
    if (p->tail)
        p->tail->next = &me;
    else
        p->head = &me;
    p->tail = &me;
    p->nwaiting++;

    deadline_after(&deadline, until - lb_time_mono());
    while (!me.conn && !me.slot && !me.closed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&me.cv, &p->mu, &deadline);
    pthread_cond_destroy(&me.cv);

    if (me.conn || me.slot) { /* granted, possibly just as the timeout fired */
        *got = me.conn;
        *slot = me.slot;
        return 1;
    }
    if (!me.closed)
        unlink_waiter_locked(p, &me);
    if (me.closed)
        lb_error_set(err, LB_ERR_POOL, 0, "the pool was closed");
    else if (p->fail_streak > 0 && p->last_fail.message) {
        /* Not a busy pool: the connections are being (re)opened and the server is not there. */
        lb_error_set(err, LB_ERR_CONNECT, 1,
                     "no connection within acquire_timeout (%g s): the server is not reachable "
                     "(last connect error: %s)", p->s->acquire_timeout, p->last_fail.message);
        memcpy(err->sqlstate, p->last_fail.sqlstate, sizeof err->sqlstate);
    } else
        lb_error_set(err, LB_ERR_POOL, 1,
                     "no free connection within acquire_timeout (%gs): all %d in use",
                     p->s->acquire_timeout, p->s->max);
    return 0;
}

/* A connection leaves the pool for good (slot stays counted until the caller says). */
static void discard(lb_pool *p, lb_conn *c)
{
    pthread_mutex_lock(&p->mu);
    p->total--;
    p->in_use--;
    slot_freed_locked(p);
    pthread_mutex_unlock(&p->mu);
    lb_conn_close(c);
}

/* The pool has room but the process cap has none: waits until a connection of the cap's pools
 * closes or goes idle (closing an idle one of another pool right away), for at most CAP_RECHECK
 * at a time. `seen` comes from the cap_take_locked that found no room. 1: look again; 0: the
 * deadline passed, err set. */
static int wait_cap(lb_pool *p, unsigned seen, double deadline, lb_error *err)
{
    lb_cap *g = p->cap;
    lb_conn *victim;
    double left = deadline - lb_time_mono();
    int rc = 0;

    pthread_mutex_lock(&g->mu);
    victim = cap_evict_locked(g, p);
    if (!victim && left > 0) {
        struct timespec until;
        deadline_after(&until, left < CAP_RECHECK ? left : CAP_RECHECK);
        while (g->gen == seen && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    }
    __atomic_sub_fetch(&g->waiting, 1, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&p->cap_waiting, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&g->mu);
    if (victim) {
        lb_conn_close(victim);
        return 1;
    }
    if (left > 0)
        return 1;
    lb_error_set(err, LB_ERR_POOL, 1,
                 "no free connection within acquire_timeout (%gs): this process holds "
                 "process_max_connections = %d connections across the pools of these settings, "
                 "all in use", p->s->acquire_timeout, p->s->process_max_connections);
    lb_error_set_field(&err->hint, "raise process_max_connections (within what the compute allows "
                                   "every process together), or hold connections for less time");
    return 0;
}

/* Checkout without taking a pool reference (the caller holds one for the duration), from
 * `started` (monotonic); *queued is set when it had to wait behind others or for a free slot. */
static lb_conn *checkout_from(lb_pool *p, double started, int *queued, lb_error *err)
{
    double deadline = started + p->s->acquire_timeout;

    for (;;) {
        lb_conn *c = NULL, *swept = NULL;
        int slot = 0, capped = 0;
        unsigned seen = 0;
        double now = lb_time_mono();

        pthread_mutex_lock(&p->mu);
        if (p->closed) {
            pthread_mutex_unlock(&p->mu);
            lb_error_set(err, LB_ERR_POOL, 0, "the pool is closed");
            return NULL;
        }
        sweep_locked(p, now, &swept);
        if (p->idle && !p->head) {
            c = p->idle;
            p->idle = c->next;
            p->nidle--;
            p->in_use++;
        } else if (p->total < p->s->max && !p->head) {
            if (cap_take_locked(p, &seen)) {
                p->total++;
                p->in_use++;
                slot = 1;
            } else {
                capped = *queued = 1; /* waiting for room under the process cap is a pool wait */
            }
        } else if ((*queued = 1) && !wait_locked(p, deadline, &c, &slot, err)) {
            pthread_mutex_unlock(&p->mu);
            close_list(swept);
            return NULL;
        }
        pthread_mutex_unlock(&p->mu);
        close_list(swept);
        if (capped) {
            if (!wait_cap(p, seen, deadline, err))
                return NULL;
            continue;
        }

        if (slot) {
            c = connect_retrying(p, deadline, err);
            if (!c) {
                pthread_mutex_lock(&p->mu);
                p->total--;
                p->in_use--;
                slot_freed_locked(p);
                pthread_mutex_unlock(&p->mu);
                return NULL;
            }
        } else if (!lb_conn_alive(c) || expired(p, c, now)) {
            discard(p, c); /* replace it: loop for another one or a new slot */
            continue;
        }
        if (slot && p->s->max_lifetime > 0) /* 90-100%: connections opened together age apart */
            c->lifetime = p->s->max_lifetime * (0.8 + 0.2 * lb_time_jitter());
        c->next = NULL;
        c->retry_safe = c->in_doubt = 0;
        return c;
    }
}

/* checkout_from now, timed: the wait histogram (connecting included), failures, and a queued
 * wait past slow_acquire_ms (a checkout that only connected is not a pool wait: connect events
 * say how long that took). */
static lb_conn *checkout(lb_pool *p, lb_error *err)
{
    double started = lb_time_mono();
    int queued = 0;
    lb_conn *c = checkout_from(p, started, &queued, err);
    lb_observe_wait(p->m, lb_time_mono() - started, queued ? p->s->slow_acquire_ms : 0,
                    c ? NULL : err);
    return c;
}

/* A connection found a pooler in the path: every connection of the pool stops preparing, and
 * the process says once (stderr: nginx's error log under nginx) which setting avoids it. */
static void note_pooler_locked(lb_pool *p, lb_conn *c)
{
    lb_conn *i;
    if (!c->pooler || p->pooler)
        return;
    p->pooler = 1;
    for (i = p->idle; i; i = i->next)
        lb_conn_no_prepare(i);
    fprintf(stderr, "lakebase: a transaction-mode connection pooler is in the path to %s:%d: "
            "automatic prepared statements are off for this pool; set prepare = false for it\n",
            p->s->host, p->s->port);
}

static void checkin(lb_pool *p, lb_conn *c)
{
    lb_conn *swept = NULL;
    double now = lb_time_mono();
    int closed;

    pthread_mutex_lock(&p->mu);
    closed = p->closed;
    note_pooler_locked(p, c);
    pthread_mutex_unlock(&p->mu);

    /* Never back dirty: roll back what is open, drop what is broken, busy or too old. */
    if (closed || !lb_conn_reset(c) || expired(p, c, now)) {
        discard(p, c);
    } else {
        waiter *w;
        c->last_used = now;
        pthread_mutex_lock(&p->mu);
        if ((w = dequeue_locked(p)) != NULL) {
            w->conn = c; /* stays in use: handed straight to the first waiter */
            pthread_cond_signal(&w->cv);
        } else {
            p->in_use--;
            c->next = p->idle;
            p->idle = c;
            p->nidle++;
        }
        sweep_locked(p, now, &swept);
        pthread_mutex_unlock(&p->mu);
        close_list(swept);
        if (!w)
            cap_note_idle(p); /* it went idle */
    }
}

/* A checked-out connection keeps the pool alive (its holder may drop every other reference,
 * e.g. a Lua state collecting the pool handle before a pinned transaction). */
lb_conn *lb_pool_checkout(lb_pool *p, lb_error *err)
{
    lb_conn *c = checkout(p, err);
    if (c)
        lb_pool_retain(p);
    return c;
}

void lb_pool_checkin(lb_pool *p, lb_conn *c)
{
    if (!c)
        return;
    checkin(p, c);
    lb_pool_release(p);
}

/* ------------------------------------------------------------------------------------------
 * One-shot statements with a retry on a connection that had died while idle
 * ---------------------------------------------------------------------------------------- */

/* Whether a failed statement goes again on a fresh connection: when the connection died before
 * the server could run it, or, for an idempotent statement, when it died before the answer. */
static int retry_statement(const lb_conn *c, unsigned flags)
{
    return c->broken && (c->retry_safe || ((flags & LB_EXEC_IDEMPOTENT) && c->in_doubt));
}

/* Attempts per statement: a connection may die between its checkout check and the send more
 * than once during a restart (each further checkout waits for a live one). */
#define EXEC_ATTEMPTS 3

PGresult *lb_pool_exec_rows(lb_pool *p, const lb_query *q, lb_rows_fn row_fn, void *ctx,
                            unsigned flags, lb_error *err)
{
    int attempt;
    for (attempt = 0; attempt < EXEC_ATTEMPTS; attempt++) {
        lb_conn *c = checkout(p, err);
        PGresult *res;
        int retry;
        if (!c)
            return NULL;
        /* retry_safe and in_doubt are only set when no row reached row_fn (lb_conn_exec_rows) */
        res = lb_conn_exec_rows(c, q, row_fn, ctx, err);
        retry = !res && retry_statement(c, flags);
        checkin(p, c);
        if (res || !retry || attempt == EXEC_ATTEMPTS - 1)
            return res;
        lb_error_clear(err);
    }
    return NULL;
}

PGresult *lb_pool_exec(lb_pool *p, const lb_query *q, lb_error *err)
{
    return lb_pool_exec_rows(p, q, NULL, NULL, 0, err); /* no row_fn: the whole result at once */
}

int lb_pool_exec_script(lb_pool *p, const char *sql, lb_error *err)
{
    int attempt;
    for (attempt = 0; attempt < EXEC_ATTEMPTS; attempt++) {
        lb_conn *c = checkout(p, err);
        int rc, retry;
        if (!c)
            return -1;
        rc = lb_conn_exec_script(c, sql, err);
        retry = rc != 0 && retry_statement(c, 0);
        checkin(p, c);
        if (rc == 0 || !retry || attempt == EXEC_ATTEMPTS - 1)
            return rc;
        lb_error_clear(err);
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------
 * Warm start
 * ---------------------------------------------------------------------------------------- */

int lb_pool_warm(lb_pool *p, lb_error *err)
{
    if (p->s->prefetch && p->cred) {
        char *token = NULL;
        double expires_at = 0;
        if (lb_credentials_get(p->cred, &token, &expires_at, err) != 0)
            return -1;
        lb_wipe_free(token);
    }
    for (;;) {
        lb_conn *c;
        pthread_mutex_lock(&p->mu);
        if (p->closed || p->nidle >= p->s->min_idle || p->total >= p->s->max ||
            !cap_take_locked(p, NULL)) { /* a full process cap ends the warm start too */
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
        p->total++; /* a slot, as checkout takes one; checkin puts the connection idle */
        p->in_use++;
        pthread_mutex_unlock(&p->mu);
        if (!(c = connect_retrying(p, lb_time_mono() + p->s->connect_timeout, err))) {
            pthread_mutex_lock(&p->mu);
            p->total--;
            p->in_use--;
            slot_freed_locked(p);
            pthread_mutex_unlock(&p->mu);
            return -1;
        }
        c->next = NULL;
        checkin(p, c);
    }
}

/* ------------------------------------------------------------------------------------------
 * Stats and close
 * ---------------------------------------------------------------------------------------- */

void lb_pool_sweep(lb_pool *p)
{
    lb_conn *swept = NULL;
    pthread_mutex_lock(&p->mu);
    sweep_locked(p, lb_time_mono(), &swept);
    pthread_mutex_unlock(&p->mu);
    close_list(swept);
}

void lb_pool_stats_get(lb_pool *p, lb_pool_stats *out)
{
    lb_pool_sweep(p); /* so the figures never count connections past idle_timeout */
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->mu);
    out->total = p->total;
    out->idle = p->nidle;
    out->in_use = p->in_use;
    out->waiting = p->nwaiting + __atomic_load_n(&p->cap_waiting, __ATOMIC_SEQ_CST);
    out->max = p->s->max;
    out->connects = p->connects;
    out->connect_failures = p->connect_failures;
    out->pooler_detected = p->pooler;
    pthread_mutex_unlock(&p->mu);
    if (p->cred) {
        lb_credential_stats cs;
        memset(&cs, 0, sizeof cs);
        lb_credentials_stats(p->cred, &cs);
        out->credential_refreshes = cs.refreshes;
        out->credential_failures = cs.failures;
        out->credential_expires_at = cs.expires_at;
    }
}

void lb_pool_gauges(lb_metrics_sample *s, size_t n)
{
    lb_pool *p;
    size_t i;

    pthread_mutex_lock(&registry_mu);
    for (p = registry; p; p = p->next) {
        for (i = 0; i < n && s[i].set != p->m; i++)
            ;
        if (i == n)
            continue;
        pthread_mutex_lock(&p->mu);
        s[i].pools++;
        s[i].open += p->total;
        s[i].idle += p->nidle;
        s[i].in_use += p->in_use;
        s[i].waiting += p->nwaiting;
        s[i].max += p->s->max;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

void lb_pool_close(lb_pool *p)
{
    lb_conn *idle;
    waiter *w;
    lb_pool **pp;

    /* Out of the registry first: a new lb_pool_acquire with these settings gets a fresh pool. */
    pthread_mutex_lock(&registry_mu);
    for (pp = &registry; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            p->next = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);

    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    idle = p->idle;
    p->idle = NULL;
    p->total -= p->nidle;
    cap_put(p, p->nidle);
    p->nidle = 0;
    while ((w = dequeue_locked(p)) != NULL) {
        w->closed = 1;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&p->mu);
    close_list(idle);
}
