"""The one exit-code enum every command uses, so CI can tell "the service got slower" from "the tool broke"."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    NO = 1  # a gate, threshold or verification said no
    USAGE = 2  # usage or configuration error
    RUNTIME = 3  # runtime error, or the run could not answer the question
    INTERRUPTED = 130
