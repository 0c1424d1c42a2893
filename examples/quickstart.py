"""A counter actor: spawn, tell, ask, ask_async, stop.

Run it with ``python examples/quickstart.py`` (state goes to a temp directory).
"""

import tempfile

from actors import Actor, ActorSystem


class Counter(Actor):
    def on_start(self):
        self.state.setdefault("count", 0)

    def on_task(self, body, msg):
        self.state["count"] += body["n"]

    def on_ask(self, question, msg):
        return self.state["count"]


def main() -> None:
    with tempfile.TemporaryDirectory() as home, ActorSystem(home=home, project=".") as system:
        counter = system.spawn(Counter, name="counter")  # returns once registered
        counter.tell({"n": 2})                           # returns once durable
        assert counter.ask("count?", timeout=5) == 2
        future = counter.ask_async("count?")             # a concurrent.futures.Future
        print(f"count = {future.result(timeout=5)}")
        counter.stop()


if __name__ == "__main__":
    main()
