"""Modal dialogs: scale (``s``), delete confirmation (``ctrl-d``), containers of a pod, help (``?``)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

HELP = """\
 Views      :po :deploy :rs :ds :sts :job :cj :svc :no :ns :ev :overview :feed :hosts :rollout
 Keys       :  command bar (resource names and aliases)      /  filter (text, or -l app=web)
            n  namespace (empty = all)   0  all namespaces   enter  drill down
            d  describe   y  YAML   l  logs (f follow, t timestamps, p previous)
            s  scale   ctrl-d  delete (asks first)   c/u  cordon/uncordon a node
            r  rollout of a deployment   x  scheduler's explanation of a pending pod
            esc  back   ?  this help   q  quit
"""


class ConfirmScreen(ModalScreen[bool]):
    """``y`` confirms, ``n``/``esc`` cancels."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n", "answer(False)", "no"), Binding("escape", "answer(False)", "no")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: 60; border: thick $error; padding: 1 2; background: $surface; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question}\n\n[y] yes   [n] no", id="confirm")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class InputScreen(ModalScreen[str | None]):
    """One line of input (scale replicas, namespace); ``enter`` submits, ``esc`` cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    InputScreen { align: center middle; }
    InputScreen > Vertical { width: 60; height: auto; border: thick $accent; padding: 1 2; background: $surface; }
    """

    def __init__(self, prompt: str, value: str = "") -> None:
        super().__init__()
        self.prompt = prompt
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.prompt)
            yield Input(value=self.value, id="dialog-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of a few names (a pod's containers); ``enter`` picks, ``esc`` cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical { width: 70; height: auto; max-height: 20; border: thick $accent; padding: 0 1; background: $surface; }
    """

    def __init__(self, title: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices  # (value, label)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text)
            yield OptionList(*(label for _, label in self.choices), id="choices")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[event.option_index][0])

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "back"), Binding("question_mark", "dismiss", "back"), Binding("q", "dismiss", "back")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 100; border: thick $accent; padding: 1 1; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static("[b]clusterctl tui — keys[/b]\n\n" + HELP.replace("[", "\\["), id="help")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
