"""``python -m bench``: run the benchmarks, print a table, write JSON under bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_INDEX_X = 10.0
TARGET_RSS_MIB = 1024.0
TARGET_SEARCH_P50_MS = 10.0


def _video(duration: float, quick: bool) -> Path:
    from bench.media import make_bench_video

    size = (640, 360) if quick else (1280, 720)
    media = RESULTS / "media"
    media.mkdir(parents=True, exist_ok=True)
    path = media / f"bench_{size[1]}p_{int(duration)}s.mp4"
    if not path.exists():
        sys.stderr.write(f"generating {path.name} ...\n")
        tmp = path.with_suffix(".tmp.mp4")
        make_bench_video(tmp, duration=duration, size=size)
        tmp.replace(path)
    return path


def _row(name: str, value: str, baseline: str, ratio: str, target: str) -> str:
    return f"| {name:<34} | {value:>14} | {baseline:>16} | {ratio:>9} | {target:<18} |"


def table(results: dict[str, Any]) -> str:
    lines = [
        _row("measure", "value", "baseline", "ratio", "target"),
        "|" + "|".join("-" * w for w in (36, 16, 18, 11, 20)) + "|",
    ]
    idx = results.get("indexing")
    if idx:
        decode_s = idx["baseline"]["video_decode_s"] + idx["baseline"]["audio_decode_s"]
        lines.append(
            _row(
                f"index {idx['duration_s']:.0f} s video",
                f"{idx['index_s']:.2f} s",
                f"decode {decode_s:.2f} s",
                f"{idx['index_over_decode']:.1f}x",
                "",
            )
        )
        ok = "ok" if idx["index_x_realtime"] >= TARGET_INDEX_X else "MISSED"
        lines.append(
            _row(
                "index speed (x real time)",
                f"{idx['index_x_realtime']:.1f}x",
                f"decode {idx['decode_x_realtime']:.1f}x",
                "",
                f">= {TARGET_INDEX_X:.0f}x ({ok})",
            )
        )
        ok = "ok" if idx["peak_rss_mib"] < TARGET_RSS_MIB else "MISSED"
        lines.append(
            _row(
                "peak RSS",
                f"{idx['peak_rss_mib']:.0f} MiB",
                f"models {idx['rss_after_load_mib']:.0f} MiB",
                "",
                f"< 1024 MiB ({ok})",
            )
        )
        lines.append(_row("model load (not in index time)", f"{idx['model_load_s']:.2f} s", "", "", ""))
        lines.append(_row("probe at upload (not in index)", f"{idx['probe_s']:.3f} s", "", "", ""))
        if idx.get("stages_s"):
            # Speech runs on its own thread beside the frame scan and OCR, so stage shares add up past 100%.
            lines.append(_row("stages (speech overlaps frames)", "", "", "% of index", ""))
        for stage, seconds in idx.get("stages_s", {}).items():
            calls = idx["stage_calls"][stage]
            share = f"{100 * seconds / idx['index_s']:.0f}%"
            lines.append(_row(f"  stage {stage} ({calls} calls)", f"{seconds:.2f} s", "", share, ""))
        lines.append(
            _row("segments / texts", f"{idx['segments']}", json.dumps(idx["texts_by_source"]), "", "")
        )
    srch = results.get("search")
    if srch:
        base = srch["baseline_numpy"]["p50_ms"]
        sandbox = srch["sandbox_rank_text"]["p50_ms"]
        ok = "ok" if sandbox < TARGET_SEARCH_P50_MS else "MISSED"
        lines.append(
            _row(
                f"search p50, {srch['segments']} segments",
                f"{sandbox:.2f} ms",
                f"numpy dot {base:.3f} ms",
                f"{srch['sandbox_over_baseline_p50']:.0f}x",
                f"< {TARGET_SEARCH_P50_MS:.0f} ms ({ok})",
            )
        )
        lines.append(
            _row(
                "search p95",
                f"{srch['sandbox_rank_text']['p95_ms']:.2f} ms",
                f"{srch['baseline_numpy']['p95_ms']:.3f} ms",
                "",
                "",
            )
        )
        lines.append(_row("query embedding p50 (E5)", f"{srch['query_embed']['p50_ms']:.2f} ms", "", "", ""))
    lines.extend(_mcp_rows(results))
    return "\n".join(lines)


def _ok(met: bool) -> str:
    return "ok" if met else "MISSED"


def _mcp_rows(results: dict[str, Any]) -> list[str]:
    """Rows for the MCP-layer benches (mcp-overhead, upload-memory, jockey-stream, tools-list)."""
    lines: list[str] = []
    ovh = results.get("mcp_overhead")
    if ovh:
        limits = {
            "inproc": ovh["targets"]["inproc_overhead_p50_ms"],
            "stdio": ovh["targets"]["stdio_overhead_p50_ms"],
        }
        for op in ("search_videos", "list_indexes"):
            base = ovh[op]["baseline"]
            for path in ("inproc", "stdio"):
                s = ovh[op][path]
                met = s["overhead_p50_ms"] < limits[path]
                lines.append(
                    _row(
                        f"{op} {path} p50 / p95",
                        f"{s['p50_ms']:.2f} / {s['p95_ms']:.2f} ms",
                        f"{base['p50_ms']:.2f} / {base['p95_ms']:.2f} ms",
                        f"{s['ratio_p50']:.2f}x",
                        f"+{s['overhead_p50_ms']:.2f} < {limits[path]:.0f} ms ({_ok(met)})",
                    )
                )
    up = results.get("upload_memory")
    if up:
        limit = up["targets"]["rss_growth_mib"]
        lines.append(
            _row(
                f"upload {up['file_mib']:.0f} MiB: server peak RSS",
                f"{up['peak_rss_mib']:.0f} MiB",
                f"at rest {up['rss_at_rest_mib']:.0f} MiB",
                f"+{up['rss_growth_mib']:.1f}",
                f"< +{limit:.0f} MiB ({_ok(up['rss_growth_mib'] < limit)})",
            )
        )
        floor = up["targets"]["throughput_ratio"]
        lines.append(
            _row(
                "upload throughput (MCP / raw)",
                f"{up['mcp_mib_s']:.0f} MiB/s",
                f"raw {up['raw_mib_s']:.0f} MiB/s",
                f"{up['throughput_ratio']:.2f}x",
                f">= {floor:.1f}x ({_ok(up['throughput_ratio'] >= floor)})",
            )
        )
    tl = results.get("tools_list")
    if tl:
        target = tl["targets"]["ratio_vs_recorded"]
        for part in ("total", "descriptions", "input_schemas", "output_schemas"):
            ratio = tl["ratio_vs_recorded"][part]
            lines.append(
                _row(
                    f"tools/list {part.replace('_', ' ')}",
                    f"{tl['bytes'][part]:,} B",
                    f"{tl['recorded_baseline'][part]:,} B",
                    f"{ratio:.2f}x",
                    f"<= {target:.1f}x ({_ok(ratio <= target)})" if part == "total" else "",
                )
            )
        lines.append(
            _row(
                "tools/list vs SDK's own schemas",
                f"{tl['bytes']['total']:,} B",
                f"{tl['same_run_unshrunk']['total']:,} B",
                f"{tl['ratio_vs_unshrunk']['total']:.2f}x",
                "",
            )
        )
    lines.extend(_hosting_rows(results))
    js = results.get("jockey_stream")
    if js:
        base = js["baseline"]
        first_limit = js["targets"]["first_overhead_p50_ms"]
        total_limit = js["targets"]["total_overhead_p50_ms"]
        for path in ("inproc", "stdio"):
            s = js[path]
            lines.append(
                _row(
                    f"jockey {path}: first text p50",
                    f"{s['first']['p50_ms']:.1f} ms",
                    f"SSE delta {base['first']['p50_ms']:.1f} ms",
                    f"+{s['first_overhead_p50_ms']:.0f} ms",
                    f"< +{first_limit:.0f} ms ({_ok(s['first_overhead_p50_ms'] < first_limit)})",
                )
            )
            lines.append(
                _row(
                    f"jockey {path}: total p50",
                    f"{s['total']['p50_ms']:.1f} ms",
                    f"SSE {base['total']['p50_ms']:.1f} ms",
                    f"{s['total_ratio_p50']:.1f}x",
                    f"< +{total_limit:.0f} ms ({_ok(s['total_overhead_p50_ms'] < total_limit)})",
                )
            )
            lines.append(
                _row(
                    f"jockey {path}: notifications",
                    f"{s['pieces_mean']:.1f}",
                    f"deltas {base['pieces_mean']:.1f}",
                    f"{s['coalescing_ratio']:.1f}x",
                    f"joined==final {_ok(s['joined_equals_final'])}",
                )
            )
    lines.extend(_answer_rows(results))
    return lines


def _answer_rows(results: dict[str, Any]) -> list[str]:
    """Rows for the answer-quality bench: one block per answerer."""
    ans = results.get("answers")
    if not ans:
        return []
    t = ans["targets"]
    lines: list[str] = []
    for label, a in ans["answerers"].items():
        refused = "n/a" if a["refused"] is None else f"{a['refused']:.0%}"
        lines.append(
            _row(
                f"answers {label[:24]}: correct",
                f"{a['correct']:.0%}",
                f"citations {a['citation_ok']:.0%}",
                f"refused {refused}",
                f">= {t['correct']:.0%} ({_ok(a['correct'] >= t['correct'])})",
            )
        )
        lines.append(
            _row(
                f"answers {label[:24]}: p50 / first",
                f"{a['p50_s']:.2f} / {a['first_token_p50_s']:.2f} s",
                f"JSON {'valid' if a['valid_json'] else 'INVALID'}",
                f"{a['fallbacks']} fallbacks",
                f"<= {t['p50_s']:.0f} / {t['first_token_p50_s']} s "
                f"({_ok(a['p50_s'] <= t['p50_s'] and a['first_token_p50_s'] <= t['first_token_p50_s'])})",
            )
        )
    return lines


def _replica_rows(results: dict[str, Any]) -> list[str]:
    rep = results.get("replicas")
    if not rep:
        return []
    one, three, relay = rep["direct_one_replica"], rep["haproxy_three_replicas"], rep["relay"]
    return [
        _row(
            f"HAProxy + {rep['replicas']} replicas: calls/s",
            f"{three['calls_per_s']:.0f}",
            f"1 replica {one['calls_per_s']:.0f}",
            f"{rep['throughput_ratio']:.2f}x",
            "",
        ),
        _row(
            "HAProxy: p50 / p99",
            f"{three['p50_ms']:.0f} / {three['p99_ms']:.0f} ms",
            f"{one['p50_ms']:.0f} / {one['p99_ms']:.0f} ms",
            "",
            "",
        ),
        _row(
            "wait_for_task relayed p50",
            f"{relay['relayed_p50_ms']:.1f} ms",
            f"local {relay['local_p50_ms']:.1f} ms",
            f"+{relay['added_p50_ms']:.1f} ms",
            f"<= +{relay['target_ms']:.0f} ms ({_ok(rep['met'])})",
        ),
    ]


def _hosting_rows(results: dict[str, Any]) -> list[str]:
    host = results.get("hosting")
    if not host:
        return _replica_rows(results)
    up, tp = host["startup"], host["throughput"]
    ours, bare = tp["tl_mcp"], tp["bare"]
    return [
        _row(
            "start-up to first tools/list",
            f"{up['tl_mcp_s']:.2f} s",
            f"bare {up['bare_s']:.2f} s",
            f"{up['ratio']:.2f}x",
            f"<= {up['target']:.1f}x ({_ok(up['met'])})",
        ),
        _row(
            f"HTTP {tp['clients']} clients: calls/s",
            f"{ours['calls_per_s']:.0f}",
            f"bare {bare['calls_per_s']:.0f}",
            f"{tp['ratio']:.2f}x",
            f">= {tp['target']:.1f}x ({_ok(tp['met'])})",
        ),
        _row(
            "HTTP 32 clients: p50 / p99",
            f"{ours['p50_ms']:.0f} / {ours['p99_ms']:.0f} ms",
            f"{bare['p50_ms']:.0f} / {bare['p99_ms']:.0f} ms",
            "",
            "",
        ),
        _row(
            "HTTP: server CPU per call",
            f"{ours['server_cpu_ms_per_call']:.2f} ms",
            f"bare {bare['server_cpu_ms_per_call']:.2f} ms",
            "",
            "",
        ),
        _row(
            "RSS per idle session",
            f"{ours['rss_per_idle_session_kib']:.0f} KiB",
            f"bare {bare['rss_per_idle_session_kib']:.0f} KiB",
            "",
            "",
        ),
        *_replica_rows(results),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny inputs (smoke run, a few seconds)")
    parser.add_argument("--duration", type=float, default=None, help="video seconds (default 120; quick 6)")
    parser.add_argument(
        "--segments", type=int, default=None, help="search segments (default 10000; quick 200)"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per analyzer (default 2)")
    parser.add_argument(
        "--only",
        choices=(
            "indexing",
            "search",
            "mcp-overhead",
            "upload-memory",
            "jockey-stream",
            "tools-list",
            "answers",
            "hosting",
            "replicas",
        ),
        default=None,
    )
    parser.add_argument(
        "--upload-mib", type=int, default=None, help="upload-memory file size (default 1024; quick 112)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON output (default bench/results/<time>.json)"
    )
    args = parser.parse_args(argv)

    duration = args.duration or (6.0 if args.quick else 120.0)
    segments = args.segments or (200 if args.quick else 10_000)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()},
        "quick": args.quick,
    }
    if args.only in (None, "indexing"):
        from bench import indexing

        results["indexing"] = indexing.run(_video(duration, args.quick), threads=args.threads)
    if args.only in (None, "search"):
        from bench import search

        results["search"] = search.run(
            segments=segments,
            per_asset=min(100, segments),
            pool=100 if args.quick else 864,
            budget_s=2.0 if args.quick else 20.0,
        )
    if args.only in (None, "mcp-overhead"):
        from bench import mcp_overhead

        results["mcp_overhead"] = mcp_overhead.run(quick=args.quick)
    if args.only in (None, "upload-memory"):
        from bench import upload_memory

        # Just above the client's multipart threshold (100 MiB) in quick mode, so the same path runs.
        results["upload_memory"] = upload_memory.run(
            size_mib=args.upload_mib or (112 if args.quick else 1024)
        )
    if args.only in (None, "jockey-stream"):
        from bench import jockey_stream

        results["jockey_stream"] = jockey_stream.run(rounds=2 if args.quick else 10)
    if args.only in (None, "hosting"):
        from bench import hosting

        results["hosting"] = hosting.run(quick=args.quick)
    if args.only in (None, "replicas"):
        from bench import replicas

        results["replicas"] = replicas.run(quick=args.quick)
    if args.only in (None, "tools-list"):
        from bench import tools_list

        results["tools_list"] = tools_list.run()
    if args.only in (None, "answers"):
        from bench import answers

        results["answers"] = answers.run(quick=args.quick)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out = args.out or RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(table(results) + "\n")
    sys.stdout.write(f"\nJSON: {out}\n")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    raise SystemExit(main())
