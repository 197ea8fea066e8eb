"""Errors a user can cause and fix, with a message written for them."""


class UserInputError(ValueError):
    """Bad input from the user: the message is shown as-is, without a traceback.

    The CLI prints it on one line and exits non-zero; the widgets show it as a
    napari notification. Raise it only with a message that says what to do.
    """
