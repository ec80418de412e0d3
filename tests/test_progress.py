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
