/* The application of the FROM-scratch example: a static program with no library, no shell and
 * no other file in its image, with pilot as its init (`ENTRYPOINT ["pilot", "--", "/app"]`).
 *
 *   app                  serve: report each signal that arrives; SIGTERM ends it with status 0
 *   app exit CODE        exit with CODE at once
 *   app kill SIGNAL      die of SIGNAL (a number) at once
 *   app orphans N        make N orphans, wait until the init has reaped every one, then serve
 *
 * It prints one line per event, so `docker logs` tells what reached it. Build it static, with
 * musl-gcc from Debian's musl-tools: `musl-gcc -static -Os -o app app.c`. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Forks `n` children that each fork a grandchild and exit, so that the grandchildren become
 * orphans and re-parent to the init. They all exit at once when the release pipe closes; then
 * this waits until every one of them is gone: kill(pid, 0) fails with ESRCH only once its
 * zombie has been reaped, which only the init (PID 1) can do. */
static int orphans(int n) {
    int release[2], report[2];
    pid_t *pids = calloc((size_t)n, sizeof(pid_t));
    if (!pids || pipe(release) || pipe(report)) {
        perror("app: orphans");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        pid_t child = fork();
        if (child < 0) {
            perror("app: fork");
            return 1;
        }
        if (child == 0) {
            pid_t grandchild = fork();
            if (grandchild == 0) {
                char c;
                close(release[1]);
                while (read(release[0], &c, 1) < 0 && errno == EINTR) {}
                _exit(0);
            }
            if (write(report[1], &grandchild, sizeof grandchild) != sizeof grandchild) _exit(1);
            _exit(0);
        }
        waitpid(child, NULL, 0);
        if (read(report[0], &pids[i], sizeof pids[i]) != sizeof pids[i]) return 1;
    }
    close(release[0]);
    close(release[1]); /* every orphan exits now */
    struct timespec pause = {0, 1000000};
    for (int i = 0; i < n; i++) {
        while (kill(pids[i], 0) == 0 || errno != ESRCH) nanosleep(&pause, NULL);
    }
    printf("app: %d orphans reaped by the init\n", n);
    free(pids);
    return 0;
}

static const char *name(int sig) {
    static char other[24];
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGWINCH: return "SIGWINCH";
    default:
        snprintf(other, sizeof other, "signal %d", sig);
        return other;
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
    if (argc == 3 && strcmp(argv[1], "kill") == 0) {
        int sig = atoi(argv[2]);
        signal(sig, SIG_DFL);
        kill(getpid(), sig);
        return 1;
    }

    /* Signals are read synchronously, so every catchable one is blocked first. */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    printf("app: pid %d, parent %d, uid %d\n", (int)getpid(), (int)getppid(), (int)getuid());

    if (argc == 3 && strcmp(argv[1], "orphans") == 0) {
        if (orphans(atoi(argv[2]))) return 1;
    } else if (argc != 1) {
        fprintf(stderr, "usage: app [exit CODE | kill SIGNAL | orphans N]\n");
        return 2;
    }

    printf("app: ready\n");
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig == SIGCHLD) continue;
        printf("app: got %s from pid %d\n", name(sig), (int)info.si_pid);
        if (sig == SIGTERM) {
            printf("app: stopping\n");
            return 0;
        }
    }
}
