/* poll.h - a file descriptor per (process, handle) that polls readable while a receive (or,
 * for a space poller, a send) would not block; the protocol is in poll.c.
 *
 * The waker's side is futex.c's ipcf_event_wake: pollers are armed through bits
 * IPCF_EVENT_SLOTS .. IPCF_EVENT_SLOTS + IPCF_EVENT_POLLERS - 1 of the event's `sleeping`
 * word, so the one load of `sleeping` a waker already makes covers them: while nobody polls
 * (or every poller is already readable, so unarmed) a wake costs what it cost before.
 */
#ifndef IPCF_POLL_H
#define IPCF_POLL_H

#include "layout.h"

#define IPCF_POLL_BITS  (((1u << IPCF_EVENT_POLLERS) - 1u) << IPCF_EVENT_SLOTS)

/* The waker's part: `sleeping` (as just loaded) has armed poller bits. For each, the one
 * caller whose atomic clear of the bit finds it set sends one byte to that poller's socket. */
void ipcf_poll_notify(struct ipcf_event *ev, uint32_t sleeping);

/* Which event of a handle a poller watches (defined next to each kind's handle struct). */
struct ipcf_event *ipcf_ring_event(ipcf_ring *r, int what);
struct ipcf_event *ipcf_queue_event(ipcf_queue *q, int what);
struct ipcf_event *ipcf_mbox_event(ipcf_mbox *m, int what);

#endif
