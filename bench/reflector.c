/* The "limit" row of the benchmark: a UDP echo that does no DNS work at all.
 *
 * It reads datagrams in batches with recvmmsg, sets the QR bit (so dnsperf counts the
 * echo as a response) and sends them back with sendmmsg: the kernel's UDP path and the
 * load generator are all that is measured. If it and the DNS servers reach the same
 * queries/s, the load generator is the ceiling, and CPU time per query ranks the servers.
 *
 * An echo is padded with zeros up to SIZE bytes when one is given: a 100-address answer
 * is 1.7 KB against a 60-byte query, and both the kernel and dnsperf spend more on bigger
 * datagrams, so the limit for a workload is an echo as big as that workload's answers.
 * dnsperf reads only the header of a response.
 *
 * Usage: reflector PORT[:SIZE]...   (binds 127.0.0.1:PORT; one thread per port)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
#define SIZE 4096

struct reflector {
    int fd;
    int pad_to;
    char bufs[BATCH][SIZE];
    struct sockaddr_storage peers[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
};

static void *serve(void *arg) {
    struct reflector *r = arg;
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            r->iov[i] = (struct iovec){.iov_base = r->bufs[i], .iov_len = SIZE};
            r->msgs[i].msg_hdr = (struct msghdr){.msg_name = &r->peers[i],
                                                 .msg_namelen = sizeof r->peers[i],
                                                 .msg_iov = &r->iov[i],
                                                 .msg_iovlen = 1};
        }
        int n = recvmmsg(r->fd, r->msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            int len = (int)r->msgs[i].msg_len;
            if (len >= 3)
                r->bufs[i][2] |= 0x80;
            if (len < r->pad_to) {
                memset(r->bufs[i] + len, 0, (size_t)(r->pad_to - len));
                len = r->pad_to;
            }
            r->iov[i].iov_len = (size_t)len;
        }
        for (int sent = 0; sent < n;) {
            int m = sendmmsg(r->fd, r->msgs + sent, (unsigned)(n - sent), 0);
            sent += m > 0 ? m : 1;
        }
    }
    return NULL;
}

static int open_socket(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        return -1;
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT[:SIZE]...\n", argv[0]);
        return 2;
    }
    pthread_t threads[argc - 1];
    for (int i = 1; i < argc; i++) {
        int port = 0, pad_to = 0;
        if (sscanf(argv[i], "%d:%d", &port, &pad_to) < 1 || port <= 0 || port > 65535 ||
            pad_to < 0 || pad_to > SIZE) {
            fprintf(stderr, "%s: want PORT or PORT:SIZE (SIZE up to %d), got %s\n", argv[0],
                    SIZE, argv[i]);
            return 2;
        }
        struct reflector *r = calloc(1, sizeof *r);
        if (!r)
            return 1;
        r->pad_to = pad_to;
        r->fd = open_socket(port);
        if (r->fd < 0) {
            fprintf(stderr, "%s: cannot bind 127.0.0.1:%d: ", argv[0], port);
            perror(NULL);
            return 1;
        }
        if (pthread_create(&threads[i - 1], NULL, serve, r) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 1; i < argc; i++)
        pthread_join(threads[i - 1], NULL);
    return 0;
}
