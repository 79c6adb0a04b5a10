/* inspect.h - what each kind reports to ipcf_seg_inspect (`ipcfast ls/stat/gc`).
 *
 * The inspection layer knows the segment header but none of the control blocks: each kind
 * fills the 8 counters of struct ipcf_seg_info from its own block (see ipcfast.h for what
 * they mean), with relaxed loads: a snapshot taken without any lock, by a process that has
 * not joined the segment.
 */
#ifndef IPCF_INSPECT_H
#define IPCF_INSPECT_H

#include <stdint.h>

#include "shm.h"

#define IPCF_COUNTERS 8

typedef void (*ipcf_counters_fn)(const void *ctl, uint64_t out[IPCF_COUNTERS]);

void ipcf_ring_counters(const void *ctl, uint64_t out[IPCF_COUNTERS]);    /* RING, QPART */
void ipcf_queue_counters(const void *ctl, uint64_t out[IPCF_COUNTERS]);   /* QUEUE */
void ipcf_mbox_counters(const void *ctl, uint64_t out[IPCF_COUNTERS]);    /* MAILBOX */

/* NULL, or why the segment's control block is one its kind could never have written
 * (inspect_check.c; mailboxes: mailbox.c). Lock-free, a snapshot: never a false alarm on
 * a live segment. */
const char *ipcf_seg_check(const struct ipcf_seg *s);
const char *ipcf_mbox_check_seg(const struct ipcf_seg *s);

#endif
