/* proc.h: what signal.c shares with process.c: internal signal watches (the
 * SIGCHLD fallback) that soon_loop_close ignores and that keep no loop alive.
 */
#ifndef SOON_PROC_H
#define SOON_PROC_H

#include "../core/core.h"

/* A signal handle owned by the library: not counted by soon_loop_close, never
 * counted as active, stopped (never closed) by its owner with
 * soon_signal_stop. It shares the registry, and so the process-wide
 * disposition, with the user's handles for the same signal. */
void soon__signal_init_internal(soon_loop *loop, soon_signal *handle);

#endif
