"""Exceptions raised on bad user input (config, manifests, images, checkpoints).

The command line prints a :class:`PipelineError` as one line (exit status 1); any other
exception is a bug and keeps its traceback in the log.
"""


class PipelineError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class ConfigError(PipelineError):
    """The configuration does not match the schema."""


class SettingError(ConfigError, ValueError):
    """A setting's value cannot be used, found where it is used (a model or loss setting,
    a plan value). Also a ``ValueError``, for callers of the library functions."""


class OutputError(PipelineError, OSError):
    """An output could not be written (a full disk, a file-size limit, no permission)."""


class CaseError(PipelineError):
    """A case's files are missing, unreadable or inconsistent.

    The message names the case, the file, the value found and what was expected.
    """

    def __init__(self, case: str, path: object, problem: str) -> None:
        self.case = case
        self.path = str(path)
        self.problem = problem
        super().__init__(f"case {case!r}, file {self.path}: {problem}")


class FailedCasesError(PipelineError):
    """Cases failed their check, so a step that needs them cannot run (the message lists
    each case with its problem), or no case is left to work on."""


class GeometryError(CaseError, ValueError):
    """Two images of a case do not lie on the same voxel grid (size, spacing, origin or direction).

    Also a ``ValueError``, so callers that caught the plain ``ValueError`` of earlier versions
    still do.
    """


class EvaluationError(PipelineError, ValueError):
    """The inputs of an evaluation do not fit together: unpaired files, missing labels, or
    label maps whose values are not the declared labels (also a ``ValueError``)."""
