/* The "limit" row of the benchmark: a UDP echo that does no DNS work at all.
 *
 * It reads datagrams in batches with recvmmsg, sets the QR bit (so dnsperf counts the
 * echo as a response) and sends them back with sendmmsg: the kernel's UDP path and the
 * load generator are all that is measured. If it and the DNS servers reach the same
 * queries/s, the load generator is the ceiling, and CPU time per query ranks the servers.
 *
 * Usage: reflector PORT   (binds 127.0.0.1:PORT)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
#define SIZE 4096

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("bind");
        return 1;
    }
    static char bufs[BATCH][SIZE];
    static struct sockaddr_storage peers[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = SIZE};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                              .msg_namelen = sizeof peers[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_len >= 3)
                bufs[i][2] |= 0x80;
            iov[i].iov_len = msgs[i].msg_len;
        }
        for (int sent = 0; sent < n;) {
            int m = sendmmsg(fd, msgs + sent, n - sent, 0);
            sent += m > 0 ? m : 1;
        }
    }
}
