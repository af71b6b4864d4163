"""`make bench`: a race with Cloud Custodian as a GuardDuty responder, requests per remediation,
further findings on one instance, the tamper watch's time to repair, a group of instances (an
attack sequence) beside one, listing by a rare status, a burst of findings, cold start and
package size, on the embedded AWS. Prints the figures and
writes them into bench/RESULTS.md between its markers (the hand-written notes around them are
kept). `--only tamper` runs that one measure and prints its section, writing nothing.

    python -m bench [--runs 20] [--shape-runs 3] [--cold-runs 5] [--burst-instances 250]
                    [--further-at 1,100,1000,5000] [--incidents-at 0,1000,10000]
                    [--tamper-runs 20] [--group-runs 5] [--only tamper|group]
"""

import argparse
import datetime
import logging
import os
import platform
import re
import statistics
import sys
import time

from chalicelib.tamper import SWEEP_MINUTES
from local import stack as local_stack

from bench import (burst, clock, coldstart, custodian, further, group, listing, package, race,
                   remediation, tamper)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
BEGIN, END = "<!-- measured: begin -->", "<!-- measured: end -->"
SETTINGS = {"SNAPSHOT_POLL_SECONDS": "1", "SNAPSHOT_DEADLINE_SECONDS": "60"}
GOAL_ROUND_TRIPS = 5  # to isolation, groups exist, for 1 and for 8 interfaces (issue 15)
GOAL_NEW, GOAL_DUPLICATE = 3, 4
GOAL_VS_BOTO3, GOAL_VS_C7N, GOAL_ZIP = 1.3, 0.5, 0.1


def median(values) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def to_isolation(runs: list) -> str:
    """The critical path of `runs` in round trips, then in requests, then all requests before it."""
    return (f"{median([r.round_trips for r in runs]):g} round trips "
            f"({median([r.critical_path for r in runs]):g} requests; "
            f"{median([r.until_isolated for r in runs]):g} before it)")


def requests_section(runs: dict[str, list]) -> list[str]:
    rows = []
    for name, shape_runs in runs.items():
        first, then = [r.first for r in shape_runs], [r.then for r in shape_runs]
        rows.append([
            name, to_isolation(then), f"{median([r.total for r in then]):g}",
            to_isolation(first), f"{median([r.total for r in first]):g}",
            *(custodian_requests([r.custodian[variant] for r in shape_runs])
              if shape_runs[0].custodian else "n/a" for variant in custodian.VARIANTS),
        ])
    one = runs[remediation.CONTAINMENT_SHAPE][0].then

    def warm(name, figure):
        """The median of `figure` over the shape's runs with the VPC's groups existing."""
        return median([figure(r.then) for r in runs[name]])

    by_interfaces = {n: remediation.interfaces_shape(n) for n in remediation.INTERFACES}
    trips = {n: warm(name, lambda r: r.round_trips) for n, name in by_interfaces.items()}
    total = {n: warm(name, lambda r: r.total) for n, name in by_interfaces.items()}
    steps = list(zip(remediation.INTERFACES, remediation.INTERFACES[1:]))
    per_interface = [(total[b] - total[a]) / (b - a) for a, b in steps]
    fewest, most = remediation.INTERFACES[0], remediation.INTERFACES[-1]
    per_volume = (warm("1 interface, 8 volumes", lambda r: r.total)
                  - warm(remediation.CONTAINMENT_SHAPE, lambda r: r.total)) / 7
    lines = ["### AWS requests per remediation (medians)", "",
             "Requests = moto's recorder (less the PutEvents that brings the finding) + Lambda "
             "invocations the bridge answered. *Isolation*: the last of the victim's interfaces "
             "answered a swap to the VPC's isolation group alone (told by the request's "
             "parameters; swaps to the all-open group, connection-tracking changes and later "
             "verifying swaps do not count). *To isolation* = the critical path, what the "
             "isolating swap waits for: in sequential round trips (requests in flight at the same "
             "time, as the client sent and received them, count once; each invocation started "
             "before isolation counts one), in requests, and every request and invocation made "
             "before isolation (the detection notice may go out before it, off the path). "
             "*Groups exist*: a second instance in the VPC; *first in VPC*: right after a reset, "
             "the VPC's isolation groups are created.", ""]
    lines += table(["shape", "to isolation, groups exist", "total", "to isolation, first in VPC",
                    "total, first in VPC",
                    *(f"Custodian `{v}`: to its last swap / total" for v in custodian.VARIANTS)],
                   rows)
    lines += ["",
              f"- Goal ≤ {GOAL_ROUND_TRIPS} round trips to isolation, groups exist: "
              f"{trips[fewest]:g} for {fewest} interface — "
              f"{verdict(trips[fewest] <= GOAL_ROUND_TRIPS)}; {trips[most]:g} for {most} "
              f"interfaces — {verdict(trips[most] <= GOAL_ROUND_TRIPS)}.",
              f"- Round trips to isolation per extra interface (groups exist): "
              f"{(trips[most] - trips[fewest]) / (most - fewest):g}; requests in all per extra "
              f"interface: {', '.join(f'{p:g}' for p in per_interface)} (from "
              f"{', '.join(f'{a} to {b}' for a, b in steps)}; linear: "
              f"{verdict(len(set(per_interface)) == 1)}).",
              f"- Total per extra volume: {per_volume:g} (constant in volumes: "
              f"{verdict(per_volume == 0)}).",
              f"- Requests made before isolation (1 interface, groups exist, one run, in the order "
              f"sent): {', '.join(one.requested_before)}; invoked before it: "
              f"{', '.join(one.invoked_before)}.",
              f"- Requests in all, same run: {len(one.calls)} to AWS + {len(one.invocations)} "
              f"invocations ({', '.join(one.invocations)})."]
    lines += [f"- Custodian's columns: a responder process started for the one event (a cold "
              f"start: its first event asks STS for the account); `remove: all` isolated in "
              f"{isolated_runs(runs, 'remove: all')}, `remove: matched` in "
              f"{isolated_runs(runs, 'remove: matched')} runs of all shapes.", ""]
    return lines


def custodian_requests(runs: list) -> str:
    """A Custodian cell of the requests table: to its last swap / in all, how often isolated."""
    return (f"{median([c.until_swap for c in runs]):g} / {median([len(c.calls) for c in runs]):g}"
            f"{'' if all(c.isolated for c in runs) else ' (not isolated)'}")


def isolated_runs(runs: dict, variant: str) -> str:
    theirs = [r.custodian[variant] for shape_runs in runs.values() for r in shape_runs
              if r.custodian]
    return f"{sum(c.isolated for c in theirs)} of {len(theirs)}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def timeline_table(timeline: list, until: float) -> list[str]:
    """The requests of a timeline up to `until` (its isolation), times in ms after the event."""
    return table(["request", "sent (ms)", "answered (ms)"],
                 [[name, ms(sent), ms(answered) if answered > sent else ""]
                  for name, sent, answered in timeline if sent <= until])


def race_section(result: race.Race, cold: list) -> list[str]:
    """The race (warm), with the cold figures of the 1 interface / 1 volume shape runs beside."""
    app = result.app
    app_iso = median([r.seconds_from_handler for r in app])
    rows = [[f"{race.APP} (groups exist, clients made)", f"{app_iso:.3f}",
             f"{median([r.critical_path for r in app]):g} "
             f"({median([r.round_trips for r in app]):g} round trips) / "
             f"{median([r.total for r in app]):g}", f"{len(app)} of {len(app)}",
             f"{median([r.first.seconds_from_handler for r in cold]):.3f} (first after a reset: "
             "clients made anew, groups created)", ""]]
    for variant, runs in result.custodian.items():
        cold_runs = [r.custodian[variant] for r in cold]
        rows.append([f"Custodian `{variant}` (warm responder)",
                     f"{median([r.seconds_to_swap for r in runs]):.3f}",
                     f"{median([r.until_swap for r in runs]):g} / "
                     f"{median([len(r.calls) for r in runs]):g}",
                     f"{sum(r.isolated for r in runs)} of {len(runs)}",
                     f"{median([r.seconds_to_swap for r in cold_runs]):.3f} (first event of a "
                     "fresh responder)",
                     f"{median([r.seconds_from_spawn for r in cold_runs]):.3f}"])
    fastest = race.fastest_isolating(result.custodian)
    lines = [f"### The race: time to isolation, 1 interface / 1 volume (medians of {len(app)} "
             "rounds, s)", "",
             "The same GuardDuty finding (its EventBridge event) for instances alike (1 "
             "interface with two groups, 1 volume) in one VPC. ec2-quarantine: the finding put "
             "on the bus, from its entry function's start to the isolating swap answered. "
             "Custodian (`mode: guard-duty`, bench/custodian-policy.yml): its Lambda handler "
             "`c7n.handler.dispatch_event` in one long-lived process (bench/c7n_responder.py) "
             "handed the event, from the hand-over to its last swap answered, whether or not it "
             "isolated. Warm: the app after a first remediation in the VPC, each responder "
             "after a first event (config loaded, account asked, clients made). Each round runs "
             "every contender once, each going first in turn. *Isolated*: every interface reads "
             "back exactly the isolation group. Requests: to isolation (the critical path) / "
             "in all. Cold (medians of the shape runs below): the app's first remediation after "
             "a reset; Custodian's first event in a responder started for it, and from that "
             "process's start (interpreter and imports).", ""]
    lines += table(["contender", "to isolation", "requests", "isolated", "cold: to isolation",
                    "cold: from process start"], rows)
    if fastest is None:
        lines += ["", "- No Custodian policy isolated in every round: no ratio.", ""]
        return lines
    theirs = median([r.seconds_to_swap for r in result.custodian[fastest]])
    ratio = app_iso / theirs
    lines += ["", f"- Goal: the app's time to isolation ≤ 1.0× the fastest Custodian policy "
                  f"that isolates (`{fastest}`): {ratio:.2f}× — {verdict(ratio <= 1.0)}.",
              f"- The app's final report: {median([r.seconds_to_report for r in app]):.3f} s "
              "after the finding's arrival (one 1 s snapshot poll included); Custodian's "
              f"handler returned (snapshot and tag made) "
              f"{median([r.seconds_handler for r in result.custodian[fastest]]):.3f} s after "
              "the hand-over."]
    for variant, runs in result.custodian.items():
        lines.append(f"- Custodian `{variant}`'s requests (warm): {', '.join(runs[0].calls)}; "
                     f"interfaces afterwards: {runs[0].groups_left}.")
    mine = race.median_run(app, lambda r: r.seconds_from_handler)
    other = race.median_run(result.custodian[fastest], lambda r: r.seconds_to_swap)
    lines += ["", "#### Where the time goes (the median run of each)", "",
              f"ec2-quarantine, {ms(mine.seconds_from_handler)} ms to isolation, of which "
              f"{ms(race.in_flight(mine.timeline, mine.seconds_from_handler))} ms with a request "
              "in flight (at the client; the rest is the app's and the in-process Lambda "
              "bridge's own work). Its critical path:", ""]
    lines += timeline_table(mine.timeline, mine.seconds_from_handler)
    lines += ["", f"Custodian `{fastest}`, {ms(other.seconds_to_swap)} ms to its last swap, of "
                  f"which {ms(race.in_flight(other.timeline, other.seconds_to_swap))} ms with a "
                  "request at the embedded AWS (the rest is c7n's own work and the way there):",
              ""]
    lines += timeline_table(other.timeline, other.seconds_to_swap)
    return lines + [""]


def further_section(result: further.Further) -> list[str]:
    rows = [[f"{p.nth:,}", f"{p.seconds:.3f}", p.requests, p.decision] for p in result.probes]
    listed = "no such route" if result.listed is None else f"{result.listed:,}"
    return ["### Further findings on one contained instance", "",
            "Through the entry function as EventBridge hands them to it; each probe delivered "
            "alone, the findings between them 8 at a time "
            f"({result.per_second:.1f} a second). Time: the handler's run.", "",
            *table(["further finding", "handler (s)", "requests", "answered"], rows), "",
            f"- Delivered {result.delivered:,}; answered other than `recorded`: {result.errors} "
            f"— {verdict(result.errors == 0)}; held by the incident: {result.kept:,} — "
            f"{verdict(result.kept == result.delivered)} (none lost).",
            f"- The incident shows (GET /incidents/{{id}}): "
            f"{', '.join(f'{k} {v:,}' for k, v in result.shown.items()) or 'nothing'}; "
            f"GET /incidents/{{id}}/findings pages through: {listed}.", ""]


def tamper_section(rounds: list) -> list[str]:
    kinds = [kind.name for kind in tamper.KINDS if any(r.kind == kind.name for r in rounds)]

    def row(name, of):
        return [name, len(of), *(tamper.spread([getattr(r, figure) for r in of])
                                 for figure in ("delivered", "repaired", "read_back"))]
    rows = [row(kind, [r for r in rounds if r.kind == kind]) for kind in kinds]
    return [f"### The tamper watch: from a tampering call to its repair (ms, median (min–max) "
            f"of {len(rounds)} rounds)", "",
            "One instance (2 interfaces) contained once; then each round an IAM user of the "
            "account, not the product, undoes one thing, the kinds taking turns. Times from the "
            "tampering call answered at the caller: *delivered*, the watch's function "
            f"(`{tamper.WATCH}`) started with the call's CloudTrail event (the embedded AWS "
            "queues it as the call answers, so the watch may start before the caller has read "
            "the answer: below zero; EventBridge's rule hands it over); "
            "*repaired*, the watch's request that put it back answered at its client (the "
            "isolating swap of the two-step, the rule revoked, the metadata endpoint off); "
            "*read back*, a read polled every "
            f"{tamper.POLL_SECONDS * 1000:g} ms (DescribeNetworkInterfaces, "
            "DescribeSecurityGroups, DescribeInstances) found containment whole again. The "
            "figure is *repaired*; *read back* adds the poll's own round trip and interval (the "
            "poll runs in the watch's process, on the same embedded AWS: it slows the watch a "
            "little). IAM is not enforced, as in the rest of the bench.", "",
            *table(["tampering", "rounds", "delivered", "repaired", "read back"],
                   [*rows, row("all", rounds)]), "",
            "- On AWS, CloudTrail's own delivery of the event to EventBridge comes on top of "
            "these figures: typically seconds to a few minutes, and best-effort (an event may "
            f"come late or never). The sweep, every {SWEEP_MINUTES} minutes, bounds the worst "
            "case when an event is lost: containment undone then stays undone until the next "
            f"sweep, up to {SWEEP_MINUTES} minutes plus its check and repair.", ""]


def listing_section(listings: list) -> list[str]:
    rows = [[f"{x.incidents:,}", x.found, x.requests, x.queries, f"{x.seconds:.3f}"]
            for x in listings]
    return [f"### GET /incidents?status={listing.RARE}&limit={listing.LIMIT}", "",
            f"Through the local API; one incident in {listing.EVERY:,} is {listing.RARE}, the "
            "others RELEASED, written straight into the table. The largest page keeps the run "
            "short: at the default 25 a listing that reads the whole table makes 4 times the "
            "queries. API Gateway gives up on a request after 29 s.", "",
            *table(["incidents", "found", "requests", "of which queries", "seconds"], rows), ""]


def burst_section(result: burst.Burst) -> list[str]:
    new, dup = result.new_requests, result.duplicate_requests
    return [f"### Burst: {result.findings} findings ({result.instances} instances × "
            f"{result.findings // result.instances}, shuffled), 8 concurrent invocations", "",
            "The handler's work (describe, claim, first cut, start; or describe, failed claim, "
            "record, announce) with real StartExecution calls; the embedded Step Functions does not run "
            f"the {result.instances} pipelines (see bench/burst.py). Findings per second "
            "measure moto on this machine more than the handler, which spends most of its time "
            "waiting for the embedded AWS's answers.", "",
            *table(["figure", "value", "goal"], [
                ["decisions", ", ".join(f"{k}: {v}" for k, v in sorted(result.decisions.items())),
                 ""],
                ["incidents / executions", f"{result.incidents} / {result.executions}",
                 f"{result.instances} / {result.instances} — "
                 f"{verdict(result.incidents == result.executions == result.instances)}"],
                ["errors", result.errors, f"0 — {verdict(result.errors == 0)}"],
                ["findings per second", f"{result.per_second:.1f}", ""],
                ["requests per new finding (median / max)", f"{median(new):g} / {max(new)}",
                 f"≤ {GOAL_NEW} — {verdict(max(new) <= GOAL_NEW)}"],
                ["requests per duplicate (median / max)", f"{median(dup):g} / {max(dup)}",
                 f"≤ {GOAL_DUPLICATE} — {verdict(max(dup) <= GOAL_DUPLICATE)}"],
                ["requests by action", ", ".join(f"{k} {v}" for k, v in
                                                 sorted(result.by_action.items())), ""],
            ]), ""]


def coldstart_section(times: dict, repetitions: int) -> list[str]:
    app, boto3, c7n = times["app"], times["boto3"], times["c7n.handler"]
    return [f"### Cold start: import time in a fresh interpreter (medians of {repetitions})", "",
            *table(["module", "seconds", "app ÷ it", "goal"], [
                ["app (app.py)", f"{app:.3f}", "", ""],
                ["boto3", f"{boto3:.3f}", f"{app / boto3:.2f}",
                 f"≤ {GOAL_VS_BOTO3} — {verdict(app / boto3 <= GOAL_VS_BOTO3)}"],
                ["c7n.handler", f"{c7n:.3f}", f"{app / c7n:.2f}",
                 f"≤ {GOAL_VS_C7N} — {verdict(app / c7n <= GOAL_VS_C7N)}"],
            ]), "", "The app imports no boto3 (clients are made on first use), so its first "
            "AWS call pays boto3's import and its first client's model loading instead.", ""]


def package_section(app_zip: tuple, c7n_size: int) -> list[str]:
    ratio = app_zip[0] / c7n_size
    return ["### Package", "",
            *table(["archive", "bytes", "÷ Custodian's", "goal"], [
                ["deployment.zip of `make package` (this working tree)", app_zip[0],
                 f"{ratio:.3f}", f"≤ {GOAL_ZIP} — {verdict(ratio <= GOAL_ZIP)}"],
                ["Custodian's Lambda archive (c7n.mu.custodian_archive)", c7n_size, "", ""],
            ]), "", f"The zip holds: {', '.join(app_zip[1])} (Chalice's runtime is `chalice`).",
            ""]


def machine_note() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores shared with other engineers' test runs, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def write_results(lines: list[str]) -> None:
    with open(RESULTS) as handle:
        text = handle.read()
    block = "\n".join([BEGIN, *lines, END])
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    with open(RESULTS, "w") as handle:
        handle.write(text)


def counts(text: str) -> tuple[int, ...]:
    """A flag's comma-separated counts ("1,100,1000"), each a whole number ≥ 0, in order."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not numbers separated by commas") from None
    if any(value < 0 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r} has a negative count")
    return tuple(sorted(set(values)))


def start_stack():
    return local_stack.start(aws_port=0, api_port=0, environ={**os.environ, **SETTINGS})


def group_section(runs: dict) -> list[str]:
    one, most = (runs[size] for size in group.SIZES)
    ratio = median([r.seconds for r in most]) / median([r.seconds for r in one])
    rows = [[f"{size} instance{'s' if size > 1 else ''}", len(size_runs),
             f"{median([r.seconds for r in size_runs]):.3f}",
             f"{median([r.round_trips for r in size_runs]):g}",
             f"{median([r.per_instance for r in size_runs]):g}"]
            for size, size_runs in runs.items()]
    trips = (median([r.round_trips for r in most]) / median([r.round_trips for r in one]))
    return ["### A group of instances (attack sequence) beside one instance", "",
            *table(["finding about", "runs", "seconds to the last isolated (median)",
                    "round trips to the last isolated (median)",
                    "AWS requests per instance (median)"], rows), "",
            f"The group's time over one instance's: {ratio:.2f} (goal under {group.GOAL:g} — "
            f"{verdict(ratio < group.GOAL)}); in round trips on the path to the last isolating "
            f"swap: {trips:.2f}. One finding naming {group.SIZES[-1]} instances (each with one "
            "interface and one volume, in a VPC whose groups exist) opens one incident each, "
            "started at once from the one entry function; the requests are the whole "
            "remediation's, to the report.", ""]


def measure_group(stack, timer, runs: int) -> dict:
    print(f"a group of {group.SIZES[-1]} instances and one instance: {runs} runs each...",
          flush=True)
    return group.run(stack, timer, runs)


def measure_tamper(stack, timer, rounds: int) -> list:
    print(f"tamper watch: {rounds} rounds...", flush=True)
    return tamper.run(stack, timer, rounds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="rounds of the race")
    parser.add_argument("--shape-runs", type=int, default=3, help="runs of every shape")
    parser.add_argument("--cold-runs", type=int, default=5,
                        help="runs of the 1 interface, 1 volume shape (the race's cold figures)")
    parser.add_argument("--burst-instances", type=int, default=250)
    parser.add_argument("--further-at", type=counts, default=(1, 100, 1000, 5000),
                        help="further findings timed (the nth of one instance)")
    parser.add_argument("--incidents-at", type=counts, default=(0, 1000, 10000),
                        help="incidents in the table when listing by a rare status")
    parser.add_argument("--tamper-runs", type=int, default=20,
                        help="rounds of tampering the watch repairs")
    parser.add_argument("--group-runs", type=int, default=5,
                        help="runs of a 25-instance attack sequence and of one instance")
    parser.add_argument("--imports", type=int, default=15, help="repetitions of each import")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--only", choices=["tamper", "group"],
                        help="run this measure alone and print its section (nothing written)")
    args = parser.parse_args(argv)
    if 0 in args.further_at:
        parser.error("--further-at counts from the 1st further finding")
    logging.disable(logging.WARNING)  # the app logs every decision: thousands of lines here
    command = "make bench" if os.environ.get("BENCH_VIA_MAKE") else \
        "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    if args.only:  # a partial run: the block is written by a whole one only
        stack = start_stack()
        try:
            timer = clock.install(stack)
            section = (tamper_section(measure_tamper(stack, timer, args.tamper_runs))
                       if args.only == "tamper" else
                       group_section(measure_group(stack, timer, args.group_runs)))
        finally:
            stack.stop()
        print(f"Measured with `{command}` on {machine_note()}.", "", *section, sep="\n")
        return 0

    print("cold start...", flush=True)
    imports = coldstart.run(args.imports)
    print("package...", flush=True)
    app_zip = package.app_zip()
    c7n_size = package.custodian_zip()

    stack = start_stack()
    try:
        timer = clock.install(stack)
        runs = {}
        for name in remediation.SHAPES:
            count = args.cold_runs if name == remediation.CONTAINMENT_SHAPE else args.shape_runs
            runs[name] = []
            for n in range(count):
                print(f"{name}: run {n + 1}/{count}", flush=True)
                runs[name].append(remediation.run_shape(stack, timer, name))
        print(f"race: {args.runs} rounds...", flush=True)
        race_result = race.run(stack, timer, args.runs)
        print("burst...", flush=True)
        burst_result = burst.run(stack, timer, instances=args.burst_instances)
        print(f"further findings to {args.further_at[-1]}...", flush=True)
        further_result = further.run(stack, timer, args.further_at)
        print("listing...", flush=True)
        listings = listing.run(stack, timer, args.incidents_at)
        tamper_rounds = measure_tamper(stack, timer, args.tamper_runs)
        group_runs = measure_group(stack, timer, args.group_runs)
    finally:
        stack.stop()

    lines = [f"Measured {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} with `{command}` "
             f"on {machine_note()}, in {(time.monotonic() - started) / 60:.1f} minutes.", ""]
    lines += race_section(race_result, runs[remediation.CONTAINMENT_SHAPE])
    lines += requests_section(runs)
    lines += further_section(further_result)
    lines += tamper_section(tamper_rounds)
    lines += group_section(group_runs)
    lines += listing_section(listings)
    lines += burst_section(burst_result)
    lines += coldstart_section(imports, args.imports)
    lines += package_section(app_zip, c7n_size)
    print("\n".join(lines))
    if not args.no_write:
        write_results(lines)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
