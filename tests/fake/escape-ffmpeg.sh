#!/usr/bin/env bash
# A hostile "ffmpeg" for the sandbox tests: it tries what a compromised ffmpeg would try and writes
# what it achieved, one line per attempt, to its output (the last argument, or fd 3 for pipe:3).
# The targets come from its environment: ESCAPE_OUTSIDE (files to create outside the assignment
# dir) and ESCAPE_READ (files to read), both ':'-separated, ESCAPE_PORT (a TCP port on 127.0.0.1).
# What it reports is its own view: a write that lands in the sandbox's private /tmp "succeeds" here
# and never reaches the host, so the tests check the host.
for last in "$@"; do :; done
report() {
  echo "cwd=$(pwd)"
  IFS=: read -r -a targets <<< "$ESCAPE_OUTSIDE"
  for f in "${targets[@]}"; do
    if (echo pwned > "$f") 2>/dev/null; then echo "wrote=$f"; else echo "unwritable=$f"; fi
  done
  IFS=: read -r -a files <<< "$ESCAPE_READ"
  for f in "${files[@]}"; do
    if content=$(cat "$f" 2>/dev/null); then echo "read=$f:$content"; else echo "unreadable=$f"; fi
  done
  if (exec 5<>"/dev/tcp/127.0.0.1/$ESCAPE_PORT") 2>/dev/null; then echo "tcp=connected"; else echo "tcp=refused"; fi
  echo "env-begin"
  env
  echo "env-end"
  if ls /proc/1 >/dev/null 2>&1; then echo "proc=visible"; else echo "proc=none"; fi
  echo "home=$(ls -d /root /home/* 2>/dev/null | tr '\n' ' ')"
}
if [ "$last" = "pipe:3" ]; then report >&3; else report > "$last"; fi
exit 0
