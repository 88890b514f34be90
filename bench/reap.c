/* usage: reap N
 *
 * Makes N orphans for the init it runs under: forks N children, each of which forks a grandchild
 * and exits, so the grandchildren re-parent to the init. The grandchildren block on a shared pipe.
 * Then it closes the pipe, so all N exit at the same moment, and measures how long it takes until
 * every one of them has been reaped (kill(pid, 0) fails with ESRCH only after the reap).
 * Prints: N SECONDS */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    pid_t *pids = malloc(sizeof(pid_t) * n);
    int release[2], report[2];
    if (!pids || pipe(release) || pipe(report)) return 1;
    for (int i = 0; i < n; i++) {
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 1; }
        if (child == 0) {
            pid_t grandchild = fork();
            if (grandchild == 0) {
                char b;
                close(release[1]);
                while (read(release[0], &b, 1) < 0 && errno == EINTR) {}
                _exit(0);
            }
            if (write(report[1], &grandchild, sizeof grandchild) != sizeof grandchild) _exit(1);
            _exit(0);
        }
        waitpid(child, NULL, 0);
        if (read(report[0], &pids[i], sizeof(pid_t)) != sizeof(pid_t)) return 1;
    }
    close(release[0]);
    double start = now();
    close(release[1]);
    for (int i = 0; i < n; i++) {
        while (kill(pids[i], 0) == 0) usleep(50);
    }
    printf("%d %.6f\n", n, now() - start);
    return 0;
}
