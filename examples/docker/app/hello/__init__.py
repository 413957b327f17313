"""A tiny application standing in for yours: it imports its dependencies and a rule."""

import attrs
import click


@attrs.define
class Greeting:
    name: str

    def render(self) -> str:
        return f"hello, {self.name}"


@click.command()
@click.argument("name", default="world")
def main(name: str) -> None:
    click.echo(Greeting(name).render())
