/* http_client.h — a small HTTP/1.1 client for the server tests (included by
 * tests/test_server.c only). Loopback only, one request per connection
 * (Connection: close), every wait bounded by a deadline. It sends bytes as
 * given, so tests can send what a real client library never would: broken
 * JSON, invalid UTF-8, lying Content-Length headers. Responses sent with
 * chunked transfer encoding are de-chunked. */
#ifndef MF_TEST_HTTP_CLIENT_H
#define MF_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct hc_res {
    int status;              /* 0: no response (connection failed, timeout) */
    char head[4096];         /* the status line and headers */
    char *body;              /* malloc'd, NUL-terminated (de-chunked) */
    size_t n;
} hc_res;

static double hc_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void hc_free(hc_res *r)
{
    free(r->body);
    r->body = NULL;
}

/* A connected socket to 127.0.0.1:port, or -1. */
static int hc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) { close(fd); return -1; }
    return fd;
}

static int hc_send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Sends the request: method, path, extra header lines (each ending in
 * \r\n, may be NULL), a body (may be NULL) with its Content-Length. */
static int hc_send(int fd, const char *method, const char *path, const char *headers, const char *body, size_t blen)
{
    char head[2048];
    int k = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                     headers ? headers : "");
    if (body) k += snprintf(head + k, sizeof head - (size_t)k, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    k += snprintf(head + k, sizeof head - (size_t)k, "\r\n");
    return hc_send_all(fd, head, (size_t)k) || (body && hc_send_all(fd, body, blen)) ? -1 : 0;
}

/* Reads at most cap bytes that arrive before the deadline; 0 on EOF,
 * -1 on error or timeout. */
static ssize_t hc_read_some(int fd, char *buf, size_t cap, double deadline)
{
    for (;;) {
        int ms = (int)((deadline - hc_now()) * 1000);
        if (ms <= 0) return -1;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = recv(fd, buf, cap, 0);
        if (k < 0 && errno == EINTR) continue;
        return k;
    }
}

static size_t hc_dechunk(char *p, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(p + in, &end, 16);
        char *nl = memchr(p + in, '\n', n - in);
        if (!nl || end == p + in) break;
        in = (size_t)(nl - p) + 1;
        if (sz == 0 || sz > n - in) break;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz + 2; /* the chunk's CRLF */
    }
    p[out] = 0;
    return out;
}

/* Reads the whole response (until the server closes) and splits it. */
static int hc_recv(int fd, hc_res *r, double timeout_s)
{
    memset(r, 0, sizeof *r);
    double deadline = hc_now() + timeout_s;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (;;) {
        if (n + 4096 > cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return -1; }
            buf = nb;
        }
        ssize_t k = hc_read_some(fd, buf + n, cap - n - 1, deadline);
        if (k < 0) break; /* a reset after the response still leaves the response */
        if (k == 0) break;
        n += (size_t)k;
    }
    buf[n] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        r->status = 0;
        return -1;
    }
    size_t hl = (size_t)(sep - buf);
    snprintf(r->head, sizeof r->head, "%.*s", (int)hl, buf);
    r->n = n - hl - 4;
    r->body = malloc(r->n + 1);
    memcpy(r->body, sep + 4, r->n);
    r->body[r->n] = 0;
    free(buf);
    if (strcasestr(r->head, "transfer-encoding: chunked")) r->n = hc_dechunk(r->body, r->n);
    return 0;
}

/* One request, one response; returns the status (0: none). */
static int hc_request(int port, const char *method, const char *path, const char *headers, const char *body, size_t blen,
                      hc_res *r, double timeout_s)
{
    memset(r, 0, sizeof *r);
    int fd = hc_connect(port);
    if (fd < 0) return 0;
    if (hc_send(fd, method, path, headers, body, blen)) {
        /* the server may have answered early (413) and closed */
    }
    hc_recv(fd, r, timeout_s);
    close(fd);
    return r->status;
}

static int hc_post(int port, const char *path, const char *json, hc_res *r)
{
    return hc_request(port, "POST", path, NULL, json, strlen(json), r, 120);
}

static int hc_get(int port, const char *path, hc_res *r) { return hc_request(port, "GET", path, NULL, NULL, 0, r, 30); }

#endif
