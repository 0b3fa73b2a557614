"""What every bad-input test of the CLI asserts, in one place."""
from metalearn.cli.main import main


def cli_error(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI; assert exit code 2, one line on stderr, no traceback, and each needle in that
    line; return it."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err
