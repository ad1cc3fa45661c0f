#include "common/time.hpp"

#include <cstdio>
#include <ctime>

namespace distconv {

int64_t to_unix_ms(SystemTime t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SystemTime from_unix_ms(int64_t ms) {
    return SystemTime(std::chrono::milliseconds(ms));
}

std::string format_rfc3339_ms(int64_t unix_ms, bool with_millis) {
    int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
    int millis = static_cast<int>(unix_ms - secs * 1000);
    std::time_t tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[96];
    if (with_millis)
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    else
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string format_rfc3339(SystemTime t, bool with_millis) {
    return format_rfc3339_ms(to_unix_ms(t), with_millis);
}

std::optional<SystemTime> parse_rfc3339(std::string_view s) {
    int y, mo, d, h, mi, sec;
    char tail[32] = {};
    std::string str(s);
    if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%31s", &y, &mo, &d, &h, &mi, &sec, tail) < 6)
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    std::string rest(tail);
    int millis = 0;
    if (!rest.empty() && rest[0] == '.') {
        size_t i = 1;
        int digits = 0;
        while (i < rest.size() && isdigit(static_cast<unsigned char>(rest[i]))) {
            if (digits < 3) millis = millis * 10 + (rest[i] - '0');
            ++digits;
            ++i;
        }
        if (digits == 0) return std::nullopt;
        for (int k = digits; k < 3; ++k) millis *= 10;
        rest = rest.substr(i);
    }
    if (rest != "Z" && rest != "z") return std::nullopt;  // only UTC is produced and accepted
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    std::time_t tt = timegm(&tm);
    return SystemTime(std::chrono::seconds(tt)) + std::chrono::milliseconds(millis);
}

}  // namespace distconv
