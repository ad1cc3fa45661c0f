#pragma once
// FUZZ_CHECK(cond, what): an invariant of the code under test. A violation prints what was
// expected and aborts, so libFuzzer reports it as a crash and saves the input as a reproducer.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                                               \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            std::fprintf(stderr, "invariant violated at %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #cond); \
            std::abort();                                                                                    \
        }                                                                                                    \
    } while (0)
