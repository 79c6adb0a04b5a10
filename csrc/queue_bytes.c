/* queue_bytes.c - the queue's counts (qsize, bytes held), its byte bound (max_bytes) and
 * the side journals that keep the counts exact when a peer is SIGKILLed in the middle of
 * moving them.
 *
 * Bytes held = (bytes_put - bytes_got) + item_overhead * (items_put - items_got): the
 * counters queue.c already keeps, one writer each (the producer / consumer lock holder).
 * A producer publishes its records, then counts them; a consumer counts, then moves the
 * head. A producer that checks the bound holds the producer lock, so every earlier
 * producer has finished counting: each consumed record was counted in bytes_put before
 * it was counted in bytes_got, and the check is exact (consumers only ever lower it).
 *
 * Kill safety. Without more, a peer killed between its two stores leaves a count short
 * for good: a consumer killed after counting but before moving the head leaves an item
 * that is read (and counted) again, so bytes_got runs ahead by its size forever; a
 * producer killed after publishing leaves bytes_put short. Either way the bound would
 * drift looser by one item per kill (never tighter: no phantom bytes wedge a producer).
 * To keep it exact, a max_bytes queue journals each step under its side lock: before
 * the first store, the lock holder writes what it is about to do (the ring, the position
 * the ring reaches when it is done, the side's counts before it, the items and bytes it
 * moves), and clears the journal after the last store. The next process to take that
 * lock from a dead holder (ipcf_lock returns 1) reads the ring: if the position was
 * reached the step happened and the counts become before + moved, else they go back to
 * before. Both are plain stores of absolute values, so a repair that is itself killed is
 * simply done again by the next holder. Queues without max_bytes skip the journal (one
 * predictable branch per put and get) and keep the older "at most one item short per
 * kill" counts.
 */
#define _GNU_SOURCE
#include "futex.h"
#include "inspect.h"
#include "queue.h"

void ipcf_queue_counters(const void *ctl, uint64_t out[IPCF_COUNTERS])
{
    const struct ipcf_queue_ctl *c = ctl;
    out[0] = ipcf_load_relaxed(&c->items_put);
    out[1] = ipcf_load_relaxed(&c->items_got);
    out[2] = ipcf_load_relaxed(&c->bytes_put);
    out[3] = ipcf_load_relaxed(&c->bytes_got);
    out[4] = ipcf_load_relaxed(&c->full_waits);
    out[5] = ipcf_load_relaxed(&c->empty_waits);
    out[6] = ipcf_load_relaxed(&c->write_gen);
    out[7] = ipcf_load_relaxed(&c->read_gen);
}

int64_t ipcf_queue_qsize(const ipcf_queue *q)
{
    /* items_got first: every item counted there was counted in items_put before it */
    uint64_t got = ipcf_load_acquire(&q->ctl->items_got);
    uint64_t put = ipcf_load_acquire(&q->ctl->items_put);
    int64_t n = (int64_t)(put - got);
    return n < 0 ? 0 : n;
}

/* Bytes held now, item_overhead included: exact under the producer lock, approximate
 * (never more than what is held) elsewhere. */
int64_t ipcf_queue_data_size(const ipcf_queue *q)
{
    const struct ipcf_queue_ctl *c = q->ctl;
    /* the consumers' counts first (acquire: pairs with their releases in consume_locked):
     * every record counted there was counted in the producers' counts before it */
    uint64_t bg = ipcf_load_acquire(&c->bytes_got), ig = ipcf_load_acquire(&c->items_got);
    /* acquire: pairs with the producer's release of items_put, made after bytes_put */
    uint64_t ip = ipcf_load_acquire(&c->items_put), bp = ipcf_load_relaxed(&c->bytes_put);
    uint64_t held = bp > bg ? bp - bg : 0, items = ip > ig ? ip - ig : 0;
    return (int64_t)(held + q->item_overhead * items);
}

int ipcf_qbytes_room(struct ipcf_queue *q, uint64_t n, uint64_t bytes)
{
    if (q->maxsize && ipcf_queue_qsize(q) + (int64_t)n > (int64_t)q->maxsize)
        return 0;
    if (!q->max_bytes)
        return 1;
    uint64_t held = (uint64_t)ipcf_queue_data_size(q);
    return held <= q->max_bytes && bytes <= q->max_bytes - held;
}

void ipcf_qjournal_begin(struct ipcf_qjournal *j, uint64_t gen, uint64_t pos,
                         const uint64_t *items, const uint64_t *bytes, uint64_t n, uint64_t len)
{
    /* relaxed: only the lock holder writes the journal; the release of gen below orders
     * these before it, and gen before the step's own stores (the ring's release of its
     * position comes after, in program order, and is itself a release) */
    ipcf_store_relaxed(&j->pos, pos);
    ipcf_store_relaxed(&j->items, ipcf_load_relaxed(items));
    ipcf_store_relaxed(&j->bytes, ipcf_load_relaxed(bytes));
    ipcf_store_relaxed(&j->n, n);
    ipcf_store_relaxed(&j->len, len);
    /* release: a repairer that reads gen (acquire) sees the fields above */
    ipcf_store_release(&j->gen, gen + 1);
}

void ipcf_qjournal_end(struct ipcf_qjournal *j)
{
    /* release: after the step's last store, so a repairer that still sees the journal
     * finds either the whole step or a prefix of it (and redoes the counts in both cases) */
    ipcf_store_release(&j->gen, 0);
}

/* Set a side's counts from its journal: done = the ring reached the journal's position. */
static void repair(struct ipcf_qjournal *j, uint64_t *items, uint64_t *bytes, int done)
{
    uint64_t n = done ? ipcf_load_relaxed(&j->n) : 0, len = done ? ipcf_load_relaxed(&j->len) : 0;
    /* release: as the counts' normal stores (they pair with qsize's and room's acquires) */
    ipcf_store_release(bytes, ipcf_load_relaxed(&j->bytes) + len);
    ipcf_store_release(items, ipcf_load_relaxed(&j->items) + n);
    ipcf_qjournal_end(j);
}

void ipcf_qjournal_repair_put(struct ipcf_queue *q)
{
    struct ipcf_queue_ctl *c = q->ctl;
    struct ipcf_qjournal *j = &c->put_j;
    /* acquire: pairs with the release in ipcf_qjournal_begin */
    uint64_t g = ipcf_load_acquire(&j->gen);
    if (!g)
        return;
    g--;
    /* The records were put if the ring's tail reached the journal's position and, for a
     * new ring, write_gen names it (else no consumer can ever reach it, and the next
     * producer replaces it: ipcf_qring_new). */
    int done = 0;
    if (ipcf_load_relaxed(&c->write_gen) >= g && ipcf_qring_map(q, &q->w, g) == 0)
        /* acquire: pairs with the dead producer's release of tail (ipcf_rb_publish) */
        done = ipcf_load_acquire(&q->w.rb.ctl->tail) == ipcf_load_relaxed(&j->pos);
    repair(j, &c->items_put, &c->bytes_put, done);
}

void ipcf_qjournal_repair_get(struct ipcf_queue *q)
{
    struct ipcf_queue_ctl *c = q->ctl;
    struct ipcf_qjournal *j = &c->get_j;
    uint64_t g = ipcf_load_acquire(&j->gen);     /* acquire: pairs with the begin's release */
    if (!g)
        return;
    /* The ring cannot be gone: only a consumer holding the lock unlinks one, and we are
     * the first holder since the step. If it is anyway (corruption), the counts stay. */
    if (ipcf_qring_map(q, &q->r, g - 1) != 0) {
        ipcf_qjournal_end(j);
        return;
    }
    /* acquire: pairs with the dead consumer's release of head (ipcf_rb_consume) */
    int done = ipcf_load_acquire(&q->r.rb.ctl->head) == ipcf_load_relaxed(&j->pos);
    repair(j, &c->items_got, &c->bytes_got, done);
}
