"""Exceptions raised by the dataset loaders."""


class DatasetError(Exception):
    """Base class for every dataset problem a user can fix (missing, corrupt or unknown data)."""


class DatasetNotFoundError(DatasetError):
    """No readable copy of the dataset was found in any of the places searched."""


class DatasetFormatError(DatasetError):
    """A dataset file exists but is not in the expected format (magic number, size, shape)."""
