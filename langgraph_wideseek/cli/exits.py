"""The CLI's exit statuses, one declaration for every command (their meaning for users:
docs/failure-modes.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_NO_ANSWER = 1  # `run`: the lead agent failed, or its answer is empty
EXIT_USAGE = 2  # invalid input, options or configuration, or an output path that cannot be written
EXIT_NO_EVIDENCE = 3  # `run`: an answer, but every search call failed
EXIT_OUTPUT_FAILED = 4  # `run`: an answer (printed), but the trajectory could not be written
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report a stop by signal
