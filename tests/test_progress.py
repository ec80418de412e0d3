import io

from ganforge.progress import Progress

REC = {"step": 10, "loss_d": 1.25, "loss_g": 0.75, "d_real": 0.6, "d_fake": 0.4, "steps_per_s": 120.0}


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _drive(stream) -> str:
    p = Progress(20, 0, "auto", stream=stream)
    for step in range(1, 21):
        p.update(step)
        if step % 10 == 0:
            p.log(REC | {"step": step})
    p.close()
    return stream.getvalue()


def test_terminal_gets_a_live_bar_and_no_lines():
    out = _drive(FakeTTY())
    assert "\r" in out and "20/20" in out and "loss_d=1.250" in out
    assert "step      10/20" not in out


def test_pipe_gets_plain_lines_and_no_bar():
    out = _drive(io.StringIO())
    assert out.splitlines() == [
        "step      10/20  loss_d 1.2500  loss_g 0.7500  D(x) 0.600  D(G(z)) 0.400  120 steps/s",
        "step      20/20  loss_d 1.2500  loss_g 0.7500  D(x) 0.600  D(G(z)) 0.400  120 steps/s",
    ]
    assert "\r" not in out


def test_the_likelihood_phase_shows_g_s_nll_not_d_s_zeros():
    """Text's LSTM G learning by maximum likelihood: loss_g is its NLL and D is untouched (its values are 0)."""
    stream = io.StringIO()
    p = Progress(20, 0, "lines", stream=stream)
    p.log(REC | {"mle": True, "loss_d": 0.0, "loss_g": 2.0625, "d_real": 0.0, "d_fake": 0.0})
    p.log(REC | {"step": 20})
    assert stream.getvalue().splitlines() == [
        "step      10/20  G's NLL 2.0625 nats/token (maximum likelihood; D waits)  120 steps/s",
        "step      20/20  loss_d 1.2500  loss_g 0.7500  D(x) 0.600  D(G(z)) 0.400  120 steps/s",
    ]
    tty = FakeTTY()
    bar = Progress(20, 0, "bar", stream=tty)
    bar.log(REC | {"mle": True, "loss_g": 2.0625})
    assert bar.postfix == {"nll": "2.062"}
    bar.log(REC)
    assert bar.postfix == {"loss_d": "1.250", "loss_g": "0.750"}
    bar.close()
