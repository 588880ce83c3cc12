// Diagnostic only (see docs/benchmarks.md, "Where hpcd's time goes"): an LD_PRELOAD shim
// that sets TCP_NODELAY on every socket the process accepts, i.e. on hpcd's ABCI server
// connections (tower-abci leaves Nagle's algorithm on). Build and use:
//
//   gcc -shared -fPIC -O2 -o target/libnodelay.so bench/diag/nodelay.c -ldl
//   target/release/chain_throughput --hpcd-env LD_PRELOAD=$PWD/target/libnodelay.so
//
// It changes no byte hpcd sends, only when the kernel sends it.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // fails harmlessly on non-TCP
    }
}

int accept4(int s, struct sockaddr *a, socklen_t *l, int f) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int fd = real(s, a, l, f);
    nodelay(fd);
    return fd;
}

int accept(int s, struct sockaddr *a, socklen_t *l) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int fd = real(s, a, l);
    nodelay(fd);
    return fd;
}
