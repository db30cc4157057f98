"""stevedore logs: an execution's output, as kept, as raw bytes, or followed as it comes."""

from stevedore_jobs.client import STREAMS, CliError, log_chunk, split_lines, sse_events
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.display import UsageError, json_text, output_text, shown_output


def logs(cli, args):
    if args.raw and args.follow:
        raise UsageError("--raw prints the output kept so far; it cannot --follow")
    if args.stream and not args.raw:
        raise UsageError("--stream chooses what --raw prints; without --raw both streams are printed")
    if args.raw and cli.out.isatty():  # as curl does: a job's bytes could drive the terminal
        raise UsageError("--raw writes the job's bytes exactly, escape sequences included: redirect it to a "
                         "file or a pipe (> out.bin, | less, | cat to mean it); without --raw they are shown safely")
    detail_id = cli.api.find_detail_id(args.result, args.detail)
    path = f"/result/{args.result}/detail/{detail_id}/logs/"
    if args.raw:
        return raw_logs(cli, path, args.stream or "stdout")
    if args.follow:
        return follow_logs(cli, path)
    output = cli.api.get(path)
    if cli.json:
        cli.print_json(output)
        return
    for stream in STREAMS:
        cli.write(stream, output_text(output, stream))
        if output.get(f"{stream}_truncated") and f"{stream}_omitted" not in output:  # an older server
            cli.note(f"stevedore: the {stream} shown is its end only; the start was not kept")
    if output.get("status") not in st.TERMINAL:
        cli.note(f"stevedore: execution is {output.get('status')}; its output is kept when it ends "
                 "(--follow waits for it)")


def raw_logs(cli, path, stream):
    """Write one stream's kept bytes, exactly, to stdout (GET .../logs/stdout/)."""
    response = cli.api.request("GET", f"{path}{stream}/", headers={"Accept": "application/octet-stream"},
                               stream=True)
    with response:
        out = cli.out.buffer
        for chunk in response.iter_content(chunk_size=64 * 1024):
            out.write(chunk)
        out.flush()
    omitted = int(response.headers.get("Stevedore-Omitted-Bytes") or 0)
    if omitted:
        cli.note(f"stevedore: {omitted} bytes of {stream} were not kept: they came after its first "
                 f"{response.headers.get('Stevedore-Head-Bytes')} bytes")
    status = response.headers.get("Stevedore-Status")
    if status and status not in st.TERMINAL:
        cli.note(f"stevedore: execution is {status}; this is its output so far")


def follow_logs(cli, path):
    """Stream the output as it comes (server-sent events), or poll until the execution ends."""
    response = cli.api.request("GET", path, params={"follow": "true"},
                               headers={"Accept": "text/event-stream"}, stream=True,
                               timeout=(10, None))
    if cli.json:
        def emit(stream, text):
            print(json_text({"stream": stream, "text": text}),
                  file=cli.out, flush=True)
    else:
        def emit(stream, text):
            cli.write(stream, shown_output(text))

    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        with response:
            for event, data in sse_events(split_lines(response.iter_content(chunk_size=None))):
                chunk = log_chunk(event, data)
                if chunk is None:
                    continue
                if chunk[0] == "end":
                    return
                emit(*chunk)
        status = cli.api.get(path).get("status")
        if status not in st.TERMINAL:
            raise CliError(f"the log stream closed before the execution ended (it is {status})")
        return

    # no live logs on this server: the plain endpoint, until the execution ends
    output = cli.api.json(response)
    if output.get("status") not in st.TERMINAL and cli.err.isatty():
        cli.note("stevedore: this server keeps an execution's output when it ends; waiting for that")
    printed = {stream: "" for stream in STREAMS}
    while True:
        for stream in STREAMS:
            text = output.get(stream) or ""
            # a retry starts its output anew
            new = text[len(printed[stream]):] if text.startswith(printed[stream]) else text
            if new:
                emit(stream, new)
            printed[stream] = text
        if output.get("status") in st.TERMINAL:
            return
        cli.pause()
        output = cli.poll(path)
