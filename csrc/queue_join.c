/* queue_join.c - JoinableQueue's count of unfinished tasks: task_done and join; and the
 * queue event a file-descriptor poller watches (poll.c). */
#define _GNU_SOURCE
#include "futex.h"
#include "poll.h"
#include "queue.h"

int64_t ipcf_queue_unfinished(const ipcf_queue *q)
{
    uint64_t done = ipcf_load_acquire(&q->ctl->tasks_done);
    uint64_t put = ipcf_load_acquire(&q->ctl->items_put);
    int64_t n = (int64_t)(put - done);
    return n < 0 ? 0 : n;
}

int ipcf_queue_task_done(ipcf_queue *q)
{
    uint64_t done = ipcf_load_acquire(&q->ctl->tasks_done);
    for (;;) {
        /* as multiprocessing: at most one task_done per item put */
        if (done >= ipcf_load_acquire(&q->ctl->items_put))
            return IPCF_EJOIN;
        if (ipcf_cas(&q->ctl->tasks_done, &done, done + 1))
            break;
    }
    if (done + 1 >= ipcf_load_acquire(&q->ctl->items_put))
        ipcf_event_wake(&q->ctl->join);
    return 0;
}

static int join_ready(void *p)
{
    if (is_closing(p))
        return IPCF_ECLOSED;
    return ipcf_queue_unfinished(p) == 0;
}

int ipcf_queue_join(ipcf_queue *q, int64_t timeout_ns)
{
    int rc = ipcf_wait(&q->ctl->join, join_ready, q, timeout_ns, NULL);
    return rc > 0 ? 0 : rc;
}

struct ipcf_event *ipcf_queue_event(ipcf_queue *q, int what)
{
    return what == IPCF_POLL_JOIN ? &q->ctl->join :
           what == IPCF_POLL_SPACE ? &q->ctl->space : &q->ctl->data;
}
