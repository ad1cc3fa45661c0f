#pragma once
// must(result): the value of a Result a test expects to succeed; a failed one fails the test with
// its error (and throws, which gtest reports, so the test stops there instead of reading garbage).

#include "common/error.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <utility>

namespace distconv::test {

template <typename T>
T must(Result<T> r) {
    if (!r.ok()) {
        ADD_FAILURE() << "expected success, got " << r.error().to_string();
        throw std::runtime_error(r.error().to_string());
    }
    return std::move(r).value();
}

}  // namespace distconv::test
