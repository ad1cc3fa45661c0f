#include "common/byte_range.hpp"

#include <gtest/gtest.h>

namespace distconv {
namespace {

TEST(ByteRange, OneRangeOfEachForm) {
    EXPECT_FALSE(parse_byte_range("", 100)->has_value());
    auto r = parse_byte_range("bytes=10-19", 100);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->first, 10u);
    EXPECT_EQ((*r)->last, 19u);
    EXPECT_EQ((*parse_byte_range("bytes=90-", 100))->last, 99u);
    EXPECT_EQ((*parse_byte_range("bytes=90-1000", 100))->last, 99u) << "an end past the file is clamped";
    EXPECT_EQ((*parse_byte_range("bytes=-10", 100))->first, 90u);
    EXPECT_EQ((*parse_byte_range("bytes=-1000", 100))->first, 0u);
}

TEST(ByteRange, WhatCannotBeServedIs416) {
    for (const char* h : {"bytes=100-", "bytes=5-4", "bytes=0-1,5-6", "items=0-1", "bytes=-", "bytes=-0",
                          "bytes=a-b", "bytes=1", "bytes= 1-2", "bytes=99999999999999999999-"}) {
        auto r = parse_byte_range(h, 100);
        ASSERT_FALSE(r.ok()) << h;
        EXPECT_EQ(r.error().code, ErrorCode::RangeNotSatisfiable) << h;
        EXPECT_EQ(r.error().details.value("field", ""), "Range") << h;
    }
    EXPECT_FALSE(parse_byte_range("bytes=0-", 0).ok()) << "nothing to serve in an empty file";
}

}  // namespace
}  // namespace distconv
