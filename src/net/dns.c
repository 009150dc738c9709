/* dns.c: getaddrinfo and getnameinfo, run on the pool's slow lane because the
 * resolver blocks; results come back on the loop thread as SOON_EAI_* codes. */
#include "net.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ getaddrinfo */

static void gai_work(soon_work_req *w) {
  soon_getaddrinfo_req *req = soon__container_of(w, soon_getaddrinfo_req, work);
  errno = 0; /* EAI_SYSTEM's reason is this thread's errno */
  int r = getaddrinfo(req->node, req->service,
                      req->has_hints ? &req->hints : NULL, &req->res);
  req->status = soon__eai_error(r);
  if (r)
    req->res = NULL;
}

static void gai_free_copies(soon_getaddrinfo_req *req) {
  free(req->node);
  free(req->service);
  req->node = req->service = NULL;
}

static void gai_after(soon_work_req *w, int status) {
  soon_getaddrinfo_req *req = soon__container_of(w, soon_getaddrinfo_req, work);
  gai_free_copies(req);
  struct addrinfo *res = req->res;
  req->res = NULL;
  if (status == -ECANCELED) /* the worker never ran: res was never set */
    res = NULL;
  else
    status = req->status;
  req->status = status;
  SOON__TELL(req->loop, SOON__PHASE_LOOP, SOON__KIND_REQ | SOON_GETADDRINFO,
             req, status, req->cb(req, status, res));
}

int soon_getaddrinfo(soon_loop *loop, soon_getaddrinfo_req *req,
                     soon_getaddrinfo_cb cb, const char *node,
                     const char *service, const struct addrinfo *hints) {
  if (!soon__loop_usable(loop) || !req || !cb || (!node && !service))
    return -EINVAL;
  req->node = node ? strdup(node) : NULL;
  req->service = service ? strdup(service) : NULL;
  if ((node && !req->node) || (service && !req->service)) {
    gai_free_copies(req);
    return -ENOMEM;
  }
  /* Only the four input fields: getaddrinfo wants the rest zero. */
  memset(&req->hints, 0, sizeof req->hints);
  req->has_hints = hints != NULL;
  if (hints) {
    req->hints.ai_flags = hints->ai_flags;
    req->hints.ai_family = hints->ai_family;
    req->hints.ai_socktype = hints->ai_socktype;
    req->hints.ai_protocol = hints->ai_protocol;
  }
  soon__req_init((soon_req *)req, loop, SOON_GETADDRINFO);
  req->cb = cb;
  req->status = 0;
  req->res = NULL;
  int err = soon__work_submit(loop, &req->work, gai_work, gai_after,
                              SOON_WORK_SLOW, true);
  if (err)
    gai_free_copies(req);
  return err;
}

void soon_freeaddrinfo(struct addrinfo *ai) {
  if (ai)
    freeaddrinfo(ai);
}

/* ------------------------------------------------------------ getnameinfo */

static void gni_work(soon_work_req *w) {
  soon_getnameinfo_req *req = soon__container_of(w, soon_getnameinfo_req, work);
  errno = 0;
  int r = getnameinfo((const struct sockaddr *)&req->addr,
                      soon__addr_len((const struct sockaddr *)&req->addr),
                      req->host, sizeof req->host, req->service,
                      sizeof req->service, req->flags);
  req->status = soon__eai_error(r);
}

static void gni_after(soon_work_req *w, int status) {
  soon_getnameinfo_req *req = soon__container_of(w, soon_getnameinfo_req, work);
  if (status != -ECANCELED)
    status = req->status;
  req->status = status;
  SOON__TELL(req->loop, SOON__PHASE_LOOP, SOON__KIND_REQ | SOON_GETNAMEINFO,
             req, status,
             req->cb(req, status, status ? NULL : req->host,
                     status ? NULL : req->service));
}

int soon_getnameinfo(soon_loop *loop, soon_getnameinfo_req *req,
                     soon_getnameinfo_cb cb, const struct sockaddr *addr,
                     int flags) {
  unsigned len = soon__addr_len(addr);
  if (!soon__loop_usable(loop) || !req || !cb || !len)
    return -EINVAL;
  memset(&req->addr, 0, sizeof req->addr);
  memcpy(&req->addr, addr, len);
  req->flags = flags;
  soon__req_init((soon_req *)req, loop, SOON_GETNAMEINFO);
  req->cb = cb;
  req->status = 0;
  req->host[0] = req->service[0] = '\0';
  return soon__work_submit(loop, &req->work, gni_work, gni_after,
                           SOON_WORK_SLOW, true);
}
