"""Exceptions raised on bad user input (config, manifests, images, checkpoints)."""


class PipelineError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class ConfigError(PipelineError):
    """The configuration does not match the schema."""


class CaseError(PipelineError):
    """A case's files are missing, unreadable or inconsistent.

    The message names the case, the file, the value found and what was expected.
    """

    def __init__(self, case: str, path: object, problem: str) -> None:
        self.case = case
        self.path = str(path)
        self.problem = problem
        super().__init__(f"case {case!r}, file {self.path}: {problem}")
