"""The project's errors and how every script reports them.

Every error that mmer raises for a bad input or setting (a missing file, a wrong key, an
inconsistent folder) derives from :class:`ProjectError`. Each class also keeps the built-in
base it had before (``class FoldError(ProjectError, ValueError)``), so an ``except
ValueError`` written for it still catches it.

Scripts run their ``main`` through :func:`run_script`, which turns such an error into one line
on stderr, ``<prog>: error: <message>``, and exit code :data:`EXIT_BAD_INPUT`; any other
exception is a bug and keeps its traceback. Every script ends with::

    if __name__ == "__main__":
        sys.exit(run_script(main, "<script>.py"))

A ``main`` may return its own non-zero code for a failure that is not bad input:
``recipes/loso.py`` returns 1 when one of its jobs failed. argparse's own usage errors keep
their ``usage:`` line and exit code 2.
"""
import sys

EXIT_BAD_INPUT = 2


class ProjectError(Exception):
    """A bad input or setting, reported on one line (base of mmer's error classes).

    Subclass it together with the built-in class the error is (``ValueError``, ``OSError``,
    ...); raise it directly only for a one-off setting error of a script.

    Example
    -------
    >>> class PrepError(ProjectError, ValueError):
    ...     pass
    >>> run_script(lambda argv: (_ for _ in ()).throw(PrepError("no Session1 in /data")), "prep.py", [])
    2
    """


def one_line(error):
    """The message of ``error`` on one line (white space folded; the class name when empty).

    Example
    -------
    >>> one_line(ValueError("cannot read\\n  x.json"))
    'cannot read x.json'
    >>> one_line(KeyError())
    'KeyError'
    """
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    else:
        message = str(error)
    return " ".join(message.split()) or type(error).__name__


def run_script(main, prog, argv=None):
    """Runs ``main(argv)`` (``argv`` defaults to ``sys.argv[1:]``) and returns its exit code:
    what ``main`` returns (``None`` is 0), or :data:`EXIT_BAD_INPUT` after printing a
    :class:`ProjectError` as ``<prog>: error: <message>`` on stderr (the message on one
    line: :func:`one_line`). Any other exception propagates with its traceback.

    Example
    -------
    >>> run_script(lambda argv: None, "x.py", [])
    0
    """
    try:
        code = main(sys.argv[1:] if argv is None else argv)
    except ProjectError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0 if code is None else code
