/* Pinned connections: a process-wide registry id -> checked-out connection, the one handle of a
 * transaction. The OpenResty bridge names a pin by its id, so a transaction spans calls made from
 * different Lua states and threads (each worker-thread call runs in whichever thread-pool VM is
 * free); pool:begin() holds one in a Lua object. One mutex guards the registry; network work
 * (ROLLBACK, checkin) always happens outside it. A pin is used by one caller at a time
 * (take/give). A leased pin left idle past its lease is rolled back and returned by the reaper; an
 * owned pin (lease 0) is never reaped: its owner releases it. */
#include "lakebase.h"
#include "lb_time.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct pin {
    lb_pin_id id;
    lb_pool *pool;      /* owned reference, released with the pin */
    lb_conn *conn;      /* checked out from pool for the pin's whole life */
    double last_used;   /* monotonic seconds of the last give (or creation) */
    double lease;       /* 0: owned, never reaped */
    int taken;          /* a caller holds conn between take and give */
    int release_pending; /* released while taken: finish at give */
    struct pin *next;
} pin;

static pthread_mutex_t pins_lock = PTHREAD_MUTEX_INITIALIZER;
static pin *pins;          /* singly linked: pins are few (one per open transaction) */
static lb_pin_id next_id = 1;
static int leased;         /* pins with a lease: what the reaper looks after (lb_pin_count) */

/* Unlinks and returns the pin with this id (lock held), or NULL. */
static pin *unlink_pin(lb_pin_id id)
{
    pin **pp;
    for (pp = &pins; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            pin *found = *pp;
            *pp = found->next;
            found->next = NULL;
            leased -= found->lease > 0;
            return found;
        }
    }
    return NULL;
}

static pin *find_pin(lb_pin_id id)
{
    pin *it;
    for (it = pins; it; it = it->next)
        if (it->id == id)
            return it;
    return NULL;
}

/* Rolls back whatever the pin left open and gives the connection back (lock NOT held). A failed
 * ROLLBACK leaves the connection in a transaction (or broken): the pool discards it at checkin.
 * A leased pin's ROLLBACK is a statement of its own (timed, reported: the bridge's and the
 * reaper's rollbacks); an owned pin goes back as a checked-out connection does, its checkin
 * rolling back. */
static void finish_pin(pin *pn)
{
    if (pn->lease > 0 && lb_conn_in_transaction(pn->conn)) {
        lb_error err = LB_ERROR_INIT;
        lb_conn_exec_script(pn->conn, "ROLLBACK", &err);
        lb_error_clear(&err);
    }
    lb_pool_checkin(pn->pool, pn->conn);
    lb_pool_release(pn->pool);
    free(pn);
}

/* Moves expired idle pins to a private list (lock held). No walk while no pin has a lease. */
static pin *collect_expired(void)
{
    pin **pp = &pins, *expired = NULL;
    double now;
    if (!leased)
        return NULL;
    now = lb_time_mono();
    while (*pp) {
        pin *it = *pp;
        if (it->lease > 0 && !it->taken && now - it->last_used > it->lease) {
            *pp = it->next;
            it->next = expired;
            expired = it;
            leased--;
        } else {
            pp = &it->next;
        }
    }
    return expired;
}

static int finish_list(pin *list)
{
    int n = 0;
    while (list) {
        pin *next = list->next;
        finish_pin(list);
        list = next;
        n++;
    }
    return n;
}

int lb_pin_reap(void)
{
    pin *expired;
    pthread_mutex_lock(&pins_lock);
    expired = collect_expired();
    pthread_mutex_unlock(&pins_lock);
    return finish_list(expired);
}

lb_pin_id lb_pin_new(lb_pool *p, double lease_seconds, lb_error *err)
{
    pin *pn;
    lb_conn *c;

    lb_pin_reap();
    pn = calloc(1, sizeof *pn);
    if (!pn) {
        lb_error_set(err, LB_ERR_POOL, 0, "out of memory");
        return 0;
    }
    c = lb_pool_checkout(p, err);
    if (!c) {
        free(pn);
        return 0;
    }
    pn->pool = p;
    pn->conn = c;
    pn->lease = lease_seconds > 0 ? lease_seconds : 0;
    pn->last_used = lb_time_mono();

    pthread_mutex_lock(&pins_lock);
    pn->id = next_id++;
    pn->next = pins;
    pins = pn;
    leased += pn->lease > 0;
    pthread_mutex_unlock(&pins_lock);
    return pn->id;
}

/* The reaper runs under the same lock acquisition: one mutex per take. */
lb_conn *lb_pin_take(lb_pin_id id, lb_error *err)
{
    pin *pn, *expired;
    lb_conn *c = NULL;

    pthread_mutex_lock(&pins_lock);
    expired = collect_expired();
    pn = find_pin(id);
    if (!pn || pn->release_pending)
        lb_error_set(err, LB_ERR_POOL, 0,
                     "transaction is no longer open (released, or idle longer than its lease)");
    else if (pn->taken)
        lb_error_set(err, LB_ERR_POOL, 0,
                     "transaction is in use by another call (one statement at a time)");
    else {
        pn->taken = 1;
        c = pn->conn;
    }
    pthread_mutex_unlock(&pins_lock);
    finish_list(expired);
    return c;
}

void lb_pin_give(lb_pin_id id, lb_conn *c)
{
    pin *pn, *done = NULL;

    (void)c; /* the registry already knows the connection; kept for symmetry with checkin */
    pthread_mutex_lock(&pins_lock);
    pn = find_pin(id);
    if (pn) {
        pn->taken = 0;
        if (pn->lease > 0) /* an owned pin has no lease to restart: no clock read */
            pn->last_used = lb_time_mono();
        if (pn->release_pending)
            done = unlink_pin(id);
    }
    pthread_mutex_unlock(&pins_lock);
    if (done)
        finish_pin(done);
}

void lb_pin_release(lb_pin_id id)
{
    pin *pn, *done = NULL;

    pthread_mutex_lock(&pins_lock);
    pn = find_pin(id);
    if (pn) {
        if (pn->taken)
            pn->release_pending = 1; /* the current holder finishes it at give */
        else
            done = unlink_pin(id);
    }
    pthread_mutex_unlock(&pins_lock);
    if (done)
        finish_pin(done);
}

int lb_pin_count(void)
{
    int n;
    pthread_mutex_lock(&pins_lock);
    n = leased;
    pthread_mutex_unlock(&pins_lock);
    return n;
}

int lb_pin_exists(lb_pin_id id)
{
    int found;
    pthread_mutex_lock(&pins_lock);
    found = find_pin(id) != NULL;
    pthread_mutex_unlock(&pins_lock);
    return found;
}
