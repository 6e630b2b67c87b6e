/*
 * echo_floor: the cheapest RFC 862 stream echo we know how to write, the floor
 * that `cargo xtask bench --reference` measures echo-server's cost against.
 *
 * One epoll loop per thread (default one thread), edge-triggered, non-blocking
 * sockets; with several threads each has its own SO_REUSEPORT listener.
 * Bytes are read into one 64 KiB buffer per thread and written straight back;
 * only when a write comes up short does a connection get a buffer of its own
 * for the rest, and it is not read again until that is written.
 * At end of stream it finishes writing, then closes. TCP_NODELAY on every
 * accepted socket, as echo-server sets it.
 *
 * It has no limits, no timeouts, no drain and no totals: it is what the
 * kernel costs, not a product.
 *
 * usage: echo_floor PORT [THREADS]     (PORT 0 picks one; it is printed)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CHUNK = 64 * 1024, EVENTS = 256 };

struct peer {
    int fd;
    char *rest;       /* bytes read but not yet written back, or NULL */
    size_t rest_len, rest_done;
};

static unsigned short chosen_port;
static int threads = 1;

static int listener(unsigned short port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0) { perror("socket"); exit(1); }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (threads > 1) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); exit(1); }
    if (listen(fd, 1024) < 0) { perror("listen"); exit(1); }
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    chosen_port = ntohs(addr.sin_port);
    return fd;
}

static void drop_peer(struct peer *p) {
    close(p->fd); /* closing also takes it out of the epoll set */
    free(p->rest);
    free(p);
}

/* Writes what is left over from a short write: 0 when done, 1 when the socket
   is full again, -1 when the connection failed. */
static int write_rest(struct peer *p) {
    while (p->rest_done < p->rest_len) {
        ssize_t n = send(p->fd, p->rest + p->rest_done, p->rest_len - p->rest_done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno == EAGAIN ? 1 : -1;
        p->rest_done += (size_t)n;
    }
    free(p->rest);
    p->rest = NULL;
    p->rest_len = p->rest_done = 0;
    return 0;
}

/* Serves one readiness edge; returns -1 when the connection is to be closed. */
static int serve(struct peer *p, char *chunk) {
    if (p->rest) {
        int left = write_rest(p);
        if (left != 0) return left; /* 1: wait for the next writable edge */
    }
    for (;;) {
        ssize_t n = recv(p->fd, chunk, CHUNK, 0);
        if (n == 0) return -1; /* end of stream, everything written back */
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        size_t done = 0;
        while (done < (size_t)n) {
            ssize_t w = send(p->fd, chunk + done, (size_t)n - done, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno != EAGAIN) return -1;
            if (w < 0) break;
            done += (size_t)w;
        }
        if (done < (size_t)n) {
            p->rest_len = (size_t)n - done;
            p->rest = malloc(p->rest_len);
            if (!p->rest) return -1;
            memcpy(p->rest, chunk + done, p->rest_len);
            return 0; /* read no more until the rest is written */
        }
    }
}

static void *event_loop(void *arg) {
    int lfd = *(int *)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    char *chunk = malloc(CHUNK);
    struct epoll_event ready[EVENTS];
    if (ep < 0 || !chunk || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) { perror("epoll"); exit(1); }
    for (;;) {
        int n = epoll_wait(ep, ready, EVENTS, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { perror("epoll_wait"); exit(1); }
        for (int i = 0; i < n; i++) {
            struct peer *p = ready[i].data.ptr;
            if (p) {
                if (serve(p, chunk) < 0) drop_peer(p);
                continue;
            }
            for (;;) { /* the listener: accept until the queue is empty */
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
                if (fd < 0) break;
                int on = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
                struct peer *np = calloc(1, sizeof *np);
                if (!np) { close(fd); continue; }
                np->fd = fd;
                struct epoll_event pev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = np};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &pev) < 0) drop_peer(np);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    if (argc == 3) threads = atoi(argv[2]);
    if (port < 0 || port > 65535 || threads < 1) {
        fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int *fds = calloc((size_t)threads, sizeof *fds);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    fds[0] = listener((unsigned short)port);
    for (int i = 1; i < threads; i++) fds[i] = listener(chosen_port);
    printf("listening on tcp 127.0.0.1:%u\n", chosen_port);
    fflush(stdout);
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, event_loop, &fds[i]);
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    return 0;
}
