#!/usr/bin/env python3
"""The round-trip section of bench/RESULTS.md from bench/rtt.sh's JSON lines.
usage: rtt_report.py rtt.jsonl RESULTS.md   (replaces the section between the rtt markers, or
appends it before "## Method and notes")."""
import json
import statistics
import sys

BEGIN, END = "<!-- rtt begin (bench/rtt.sh) -->", "<!-- rtt end -->"
RAW = "libpq PQexecParams"
W5_MAX = 10  # the bench app's pool size (lakebase default max)
NAMES = {
    "R0": "round-trip time of the path",
    "R1": "warm `select $1::int`",
    "R2": "first use of a new statement",
    "R3": "transaction of 5 inserts",
    "R4": "100 independent inserts",
    "R5": "cold start (connect + first query)",
    "W5": "nginx point lookup, 32 clients",
}


def main(src, dst):
    rows = [json.loads(line) for line in open(src) if line.startswith("{")]
    nominal = rows[0]["rtt_ms"] if rows else 20
    by = {}
    for r in rows:
        by.setdefault((r["workload"], r["peer"]), []).append(r)
    med = {k: statistics.median(x["value"] for x in v) for k, v in by.items()}
    fl = {k: statistics.median(x["flights"] for x in v) for k, v in by.items() if "flights" in v[0]}
    unit = {k: v[0]["unit"] for k, v in by.items()}
    errors = {k: sum(x.get("errors", 0) for x in v) for k, v in by.items()}
    # RTT: what a round trip through the proxy measures (nominal delay plus the proxy's own
    # scheduling, about 1 ms), the fastest `select 1` of raw libpq; the nominal one without it.
    rtt = med.get(("R0", "libpq PQexec"), nominal)

    out = [BEGIN, f"## Round trips at {nominal:g} ms RTT", ""]
    p = out.append
    p(f"bench/rtt.sh: every peer through spec/support/latency_proxy.py ({nominal / 2:g} ms each way, "
      "TLS verify-full and SCRAM as to a real endpoint), medians of "
      f"{max((r.get('round', 0) for r in rows), default=0) + 1} rounds; flights (round trips) are the proxy's "
      "counters for the timed part. Ratios: to one RTT as measured through the proxy (R0: "
      f"{rtt:.1f} ms for {nominal:g} ms nominal), and to raw `PQexecParams` in the same run (time).")
    p("")
    p("| workload | peer | median | unit | flights | × RTT | × raw PQexecParams |")
    p("|---|---|---:|---|---:|---:|---:|")
    for k in sorted(med):
        w, peer = k
        per_rtt = med[k] / rtt if unit[k] in ("ms/query", "ms/statement", "ms/transaction", "ms/100 inserts",
                                                 "ms/cold start", "ms/first request") else None
        raw = med.get((w, RAW))
        ratio = f"{med[k] / raw:.2f}×" if raw and unit[k].startswith("ms") else "–"
        f = fl.get(k)
        p(f"| {w} {NAMES.get(w, '')} | {peer} | {med[k]:,.1f} | {unit[k]} | "
          f"{'–' if f is None else f'{f:g}'} | {'–' if per_rtt is None else f'{per_rtt:.2f}'} | {ratio} |")
    p("")

    def get(d, w, peer):
        return d.get((w, peer))

    p("| target | figure | met |")
    p("|---|---|---|")

    def target(name, fig, ok):
        p(f"| {name} | {fig} | {'yes' if ok else ('no' if ok is not None else '–')} |")

    for interp in ("Lua 5.4", "LuaJIT"):
        lb = f"lakebase {interp}"
        v, raw = get(med, "R1", lb), get(med, "R1", RAW)
        if v and raw:
            target(f"R1 warm query ≤ 1.05 × RTT ({interp})", f"{v / rtt:.3f} × RTT", v <= 1.05 * rtt)
            target(f"R1 warm query ≤ 1.05 × raw PQexecParams ({interp})", f"{v / raw:.3f}×", v <= 1.05 * raw)
        f = get(fl, "R2", lb)
        if f is not None:
            target(f"first use of a statement: 1 flight ({interp})", f"{f:g} (raw PQprepare+PQexecPrepared: "
                   f"{get(fl, 'R2', 'libpq prepared')})", f <= 1)
        f = get(fl, "R3", lb)
        if f is not None:
            target(f"transaction of 5 statements ≤ 6 flights ({interp})", f"{f:g} (plain libpq: {get(fl, 'R3', RAW)})",
                   f <= 6)
        pl, seq = get(med, "R4", lb + " db:pipeline"), get(med, "R4", lb)
        if pl and seq:
            f = get(fl, "R4", lb + " db:pipeline")
            target(f"100 inserts via db:pipeline ≤ 2 flights and ≤ 2 RTT of time ({interp})",
                   f"{f:g} flights, {pl / rtt:.2f} RTT", f <= 2 and pl <= 2 * rtt)
            target(f"db:pipeline ≥ 20× faster than 100 sequential db:query ({interp})", f"{seq / pl:.0f}×",
                   seq / pl >= 20)
        cold, raw_cold = get(fl, "R5", lb), get(fl, "R5", RAW)
        if cold is not None and raw_cold is not None:
            target(f"cold start within 1 flight of TLS+SCRAM (raw libpq connect) ({interp})",
                   f"{cold:g} flights vs {raw_cold:g}", cold <= raw_cold + 1)
        m2m = get(fl, "R5", lb + " M2M (HTTP credential)")
        if m2m is not None and raw_cold is not None:
            target(f"M2M cold start within 1 flight of TLS+SCRAM+HTTP (libpq's connect + 2 HTTP calls) ({interp})",
                   f"{m2m:g} flights vs {raw_cold + 2:g}", m2m <= raw_cold + 3)
        warm = get(fl, "R5", lb + " min_idle+prefetch")
        if warm is not None:
            target(f"min_idle+prefetch: 0 flights on the request path besides the query ({interp})",
                   f"{warm:g} flight (the query)", warm <= 1)
    w5 = [k for k in med if k[0] == "W5"]
    for k in w5:
        goal = W5_MAX / (rtt / 1000)
        target(f"W5 at {nominal:g} ms RTT, 32 clients ≥ 90 % of max/RTT = {goal:.0f} req/s, 0 errors",
               f"{med[k]:,.0f} req/s ({med[k] / goal * 100:.0f} %), {errors[k]} errors",
               med[k] >= 0.9 * goal and errors[k] == 0)
    p("")
    p("Sizing (README): at RTT r a connection serves at most 1/r statements per second, so `max` ≈ "
      "target rate × r × statements per request (here 10 connections → 500 req/s at 20 ms); nginx's "
      "`thread_pool` needs at least `max` threads (each call holds a thread for one round trip) plus a few "
      "for transactions.")
    p("")
    p("```")
    for r in rows:
        p(json.dumps(r, sort_keys=True))
    p("```")
    p(END)

    try:
        text = open(dst).read()
    except OSError:
        text = ""
    section = "\n".join(out)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    elif "## Method and notes" in text:
        i = text.index("## Method and notes")
        text = text[:i] + section + "\n\n" + text[i:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(dst, "w").write(text)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
