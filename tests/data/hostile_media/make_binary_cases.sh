#!/bin/sh
# Regenerates the corpus files that are made from real media rather than typed by hand. Their output
# is committed; run this only to change them (it needs ffmpeg and base64), then check
# `git diff --stat` and run `ctest -L hostile_media`.
#
#   hls_data_uri_then_http.m3u8  a playlist whose first segment is a data: URI holding a real one-frame
#                                MPEG-TS (so HLS plays it and goes on to the second segment, on the
#                                listener); the URI ends in ".ts" because ffmpeg's HLS demuxer only
#                                opens segments whose name ends in a media extension
#   hls_id3_prefixed.mp3         hls_http_segments.m3u8 behind a 10-byte ID3v2 header: the probe skips
#                                ID3 tags, so it is still detected (and played) as HLS
#   image2_pattern.png           a 32x24 PNG, uploaded as "frame%03d.png"
#
# The cases that depend on the test's own secret file or port (the MP4s with data references) are not
# here: the test builds them (hostile_media_test.cpp, make_dref_mp4).
set -eu
cd "$(dirname "$0")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i color=c=blue:s=16x16:r=25:d=0.04 \
    -frames:v 1 -c:v mpeg2video -fflags +bitexact -flags +bitexact -f mpegts "$tmp/one.ts"
{
    printf '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.04,\n'
    printf 'data:video/mp2t;base64,%s.ts\n' "$(base64 -w0 "$tmp/one.ts")"
    printf '#EXTINF:1.0,\n{listener}/hls/after-data.ts\n#EXT-X-ENDLIST\n'
} > hls_data_uri_then_http.m3u8

# ID3v2.4 header: "ID3", version 4.0, no flags, tag size 0 (syncsafe).
printf 'ID3\004\000\000\000\000\000\000' > hls_id3_prefixed.mp3
cat hls_http_segments.m3u8 >> hls_id3_prefixed.mp3

ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i color=c=red:s=32x24:d=0.04 \
    -frames:v 1 -fflags +bitexact -flags +bitexact -f image2 -c:v png image2_pattern.png

ls -l hls_data_uri_then_http.m3u8 hls_id3_prefixed.mp3 image2_pattern.png
