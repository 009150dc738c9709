/* llhttp_drive.h: parse an input with llhttp (Debian's node-llhttp, built in
 * the test tree only) into the same http_result that http_drive gives soon. */
#ifndef SOON_TEST_HTTP_LLHTTP_DRIVE_H
#define SOON_TEST_HTTP_LLHTTP_DRIVE_H

#include "corpus.h"

/* Parse in[0..len) with llhttp in its default mode, as messages of one type
 * on one connection, fed in pieces cut at cuts[0..ncuts), then
 * llhttp_finish. Fills method, target, reason, status, version_minor, the
 * headers as llhttp gave them (no trimming: the comparison normalises),
 * body, complete and SOON_HTTP_KEEP_ALIVE in flags; error is llhttp's
 * positive HPE_* code (never compared with soon's), error_offset where
 * llhttp stopped, from the input's first byte. A message that switches
 * protocols (CONNECT, Upgrade) ends the result: llhttp stops there and
 * upgraded is set. */
typedef struct llhttp_result {
  http_result r;
  bool upgraded;
} llhttp_result;

llhttp_result llhttp_drive(soon_http_type type, bool head_request,
                           const char *in, size_t len, const size_t *cuts,
                           size_t ncuts);

/* Flags of llhttp's messages, beside SOON_HTTP_KEEP_ALIVE (soon uses the
 * low bits only): where llhttp was when it stopped, what it read. */
enum {
  LLHTTP_DRIVE_HEAD_DONE = 1u << 30, /* the head was complete */
  /* a trailer called Connection, Content-Length or Transfer-Encoding */
  LLHTTP_DRIVE_TRAILER_FRAMING = 1u << 29
};

/* version_minor holds the minor version of an HTTP/1.x message, and for
 * another version (llhttp takes 0.9 and 2.0) this plus 10 * major + minor:
 * never equal to soon's. */
#define LLHTTP_DRIVE_OTHER_VERSION 1000u
unsigned llhttp_drive_version(unsigned major, unsigned minor);

/* llhttp's name for an error code that llhttp_drive stored. */
const char *llhttp_drive_error_name(int error);

/* Whether llhttp takes this method in a request. */
bool llhttp_drive_method_known(const char *method);

#endif
