#!/bin/sh
# A stand-in for ffmpeg in the engine's unit tests. Driven by environment variables:
#   FAKE_FFMPEG_PROGRESS  a file of canned `-progress` output, printed block by block on stdout
#   FAKE_FFMPEG_SLEEP     seconds to sleep after each block (default 0)
#   FAKE_FFMPEG_STDERR    text written to stderr before exiting
#   FAKE_FFMPEG_EXIT      exit code (default 0)
#   FAKE_FFMPEG_OUTPUT    content written to the output (the last argument; "pipe:3" means fd 3)
#   FAKE_FFMPEG_ARGS      a file that receives the arguments, one per line
if [ -n "$FAKE_FFMPEG_ARGS" ]; then
  : > "$FAKE_FFMPEG_ARGS"
  for a in "$@"; do printf '%s\n' "$a" >> "$FAKE_FFMPEG_ARGS"; done
fi
for last in "$@"; do :; done
if [ -n "$FAKE_FFMPEG_PROGRESS" ]; then
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      progress=*) [ -n "$FAKE_FFMPEG_SLEEP" ] && sleep "$FAKE_FFMPEG_SLEEP" ;;
    esac
  done < "$FAKE_FFMPEG_PROGRESS"
fi
if [ -n "$FAKE_FFMPEG_OUTPUT" ]; then
  if [ "$last" = "pipe:3" ]; then
    printf '%s' "$FAKE_FFMPEG_OUTPUT" >&3
  else
    printf '%s' "$FAKE_FFMPEG_OUTPUT" > "$last"
  fi
fi
[ -n "$FAKE_FFMPEG_STDERR" ] && printf '%s\n' "$FAKE_FFMPEG_STDERR" >&2
exit "${FAKE_FFMPEG_EXIT:-0}"
