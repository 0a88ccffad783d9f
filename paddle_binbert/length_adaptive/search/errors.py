"""The one error type of the length search's inputs."""

__all__ = ["SearchInputError"]


class SearchInputError(ValueError):
    """Bad input found while running a search: a checkpoint that does not fit the task, an unreadable
    dev file or cache, a length configuration the model cannot run, a checkpoint that cannot be packed.
    The message names the setting (as its ``search-length`` flag); the command line reports it as a
    usage error."""
