/* Prints CLOCK_MONOTONIC in nanoseconds: the moment this program began to run. The benchmark
 * compares it with the moment it started pilot, to measure pilot's start-to-exec latency. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    return 0;
}
