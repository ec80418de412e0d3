"""What a user watches in the terminal: a live bar on a TTY, plain periodic lines otherwise, never both."""

from __future__ import annotations

import sys

from tqdm import tqdm


def format_record(rec: dict, total: int) -> str:
    """One log line, in the spirit of the reference programs' prints."""
    if rec.get("mle"):  # text's LSTM G learning the lines by maximum likelihood: D waits
        return (f"step {rec['step']:>7d}/{total}  G's NLL {rec['loss_g']:.4f} nats/token (maximum likelihood; D "
                f"waits)  {rec['steps_per_s']:.0f} steps/s")
    return (f"step {rec['step']:>7d}/{total}  loss_d {rec['loss_d']:.4f}  loss_g {rec['loss_g']:.4f}  "
            f"D(x) {rec['d_real']:.3f}  D(G(z)) {rec['d_fake']:.3f}  {rec['steps_per_s']:.0f} steps/s")


class Progress:
    """mode: 'bar' (tqdm), 'lines' (print every log step), 'none', or 'auto' (bar iff stderr is a TTY)."""

    def __init__(self, total: int, start: int = 0, mode: str = "auto", stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode, self.total, self.last = mode, total, start
        self.postfix: dict[str, str] = {}  # latest losses and eval values shown beside the bar
        self.bar = tqdm(total=total, initial=start, file=self.stream, dynamic_ncols=True, unit="step",
                        mininterval=0.25) if mode == "bar" else None

    def update(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.last)
        self.last = step

    def log(self, rec: dict) -> None:
        if self.bar is not None:
            if rec.get("mle"):
                self.postfix |= {"nll": f"{rec['loss_g']:.3f}"}
            else:
                self.postfix.pop("nll", None)
                self.postfix |= {"loss_d": f"{rec['loss_d']:.3f}", "loss_g": f"{rec['loss_g']:.3f}"}
            self.bar.set_postfix(self.postfix, refresh=False)
        elif self.mode == "lines":
            print(format_record(rec, self.total), file=self.stream, flush=True)

    def log_eval(self, rec: dict) -> None:
        """Show an evaluation record: in the bar's postfix, or as one line."""
        values = {k[5:]: v for k, v in rec.items() if k.startswith("eval/")}
        if self.bar is not None:  # the first two values (e.g. fid, kid) fit beside the losses
            self.postfix |= {k: f"{v:.4g}" for k, v in list(values.items())[:2]}
            self.bar.set_postfix(self.postfix, refresh=False)
        elif self.mode == "lines":
            text = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
            print(f"eval {rec['step']:>7d}/{self.total}  {text}" + ("  (best so far)" if rec.get("best") else ""),
                  file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """A one-off line (e.g. a warning) that does not break the bar."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        elif self.mode != "none":
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
