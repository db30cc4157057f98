"""Labels in the CLI: ``--label KEY=VALUE`` on run, task add and schedule add (the labels set), and
``-l/--label KEY=VALUE`` or ``-l KEY`` on result ls and task ls (filters, all to hold: docs/api.md#labels)."""
from stevedore_jobs.display import UsageError

SET_HELP = ("a label KEY=VALUE (repeatable; KEY= for an empty value); lists filter by them "
            "(stevedore result ls -l KEY=VALUE)")
FILTER_HELP = "only those labelled KEY=VALUE, or with the label KEY set (repeatable: all must hold)"


def parse_labels(values):
    """``--label`` values to a body's ``labels`` (None without any); the API checks keys and values."""
    if not values:
        return None
    labels = {}
    for value in values:
        key, sep, given = value.partition("=")
        if not key or not sep:
            raise UsageError(f"--label: expected KEY=VALUE, got {value!r}")
        if key in labels and labels[key] != given:
            raise UsageError(f"--label: {key} is given twice")
        labels[key] = given
    return labels


def add_label_option(parser):
    parser.add_argument("--label", action="append", metavar="KEY=VALUE", help=SET_HELP)


def add_filter_option(parser):
    parser.add_argument("-l", "--label", action="append", metavar="KEY[=VALUE]", help=FILTER_HELP)


def filter_params(args):
    """The list query's ``label`` filters from ``-l`` (each given as is), or nothing."""
    return {"label": list(args.label)} if getattr(args, "label", None) else {}


def labels_text(labels):
    """Labels in one cell: ``project=vision,sweep=lr-2026`` (sorted), None without any."""
    return ",".join(f"{key}={value}" for key, value in sorted((labels or {}).items())) or None
