"""`gateway partners diff OLD NEW` (issue 9): a realistic change — a field added with
`keep`, a transform weakened from `pseudonym` to `keep`, a purpose added — read from
two directories and from two git revisions, in text and Markdown, with its exit code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.partners.diff import TRANSFORM_RANK, PartnersDiff, diff_partners, read_partners

OLD_FIELDS = (
    'fields = { name = "keep", date_of_birth = "year", phone = "keep", uuid = "pseudonym" }'
)
NEW_FIELDS = (
    'fields = { name = "keep", date_of_birth = "year", phone = "keep", uuid = "keep", '
    'email = "keep" }'
)
OLD_PURPOSES = 'purposes = ["service_provision", "safety_security"]'
NEW_PURPOSES = 'purposes = ["service_provision", "safety_security", "research_development"]'


def widen(partners_dir: Path) -> None:
    """The change under review: email added (keep), uuid pseudonym → keep, a purpose added."""
    path = partners_dir / "lao-credit-bureau.toml"
    text = path.read_text(encoding="utf-8")
    assert OLD_FIELDS in text and OLD_PURPOSES in text
    path.write_text(text.replace(OLD_FIELDS, NEW_FIELDS).replace(OLD_PURPOSES, NEW_PURPOSES, 1))


@pytest.fixture
def sides(tmp_path: Path, project: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(project / "partners", old)
    shutil.copytree(project / "partners", new)
    return old, new


def run(project: Path, *args: str) -> list[str]:
    return ["--config", str(project / "config.toml"), "partners", "diff", *args]


def test_realistic_widening_change_exits_1_and_names_each_change(sides, project, capsys):
    old, new = sides
    widen(new)
    code = main(run(project, str(old), str(new)))
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[2:7] == [
        "lao-credit-bureau",
        "  operation credit_check",
        "    + purpose research_development added  [WIDENS]",
        "    + field email added (keep)  [WIDENS]",
        "    ~ field uuid: pseudonym → keep  [WIDENS]",
    ]
    assert "3 widen, 0 narrow" in out and "(exit 1)" in out
    assert "erasure" not in out  # the untouched operation is not mentioned


def test_markdown_for_a_pull_request(sides, project, capsys):
    old, new = sides
    widen(new)
    assert main(run(project, str(old), str(new), "--format", "markdown")) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"### Partner changes: `{old}` → `{new}`")
    assert "| partner | operation | change | before | after | effect |" in out
    assert (
        "| lao-credit-bureau | credit_check | field uuid changed | pseudonym | keep | **widens** |"
        in out
    )
    assert "| lao-credit-bureau | credit_check | field email added | — | keep | **widens** |" in out
    assert (
        "| lao-credit-bureau | credit_check | purpose research_development added | — | "
        "research_development | **widens** |"
    ) in out


def test_the_reverse_change_only_narrows_and_exits_0(sides, project, capsys):
    old, new = sides
    widen(new)
    assert main(run(project, str(new), str(old))) == 0
    out = capsys.readouterr().out
    assert "~ field uuid: keep → pseudonym  [narrows]" in out
    assert "- field email removed (keep)  [narrows]" in out
    assert "nothing widens what partners receive (exit 0)" in out


def test_neutral_changes_are_shown_but_exit_0(sides, project, capsys):
    old, new = sides
    path = new / "veriid.toml"
    text = path.read_text()
    path.write_text(
        text.replace("retention_days = 90", "retention_days = 30").replace(
            'agreement = "DPA-2025-011"',
            'agreement = "DPA-2026-001"\nagreement_expires_on = 2027-12-31',
        )
    )
    assert main(run(project, str(old), str(new))) == 0
    out = capsys.readouterr().out
    assert "~ retention_days: 90 → 30  [narrows]" in out
    assert "~ agreement: DPA-2025-011 → DPA-2026-001  [changed]" in out
    assert "~ agreement_expires_on: — → 2027-12-31  [changed]" in out


def test_load_limits_are_shown_as_changes(sides, project, capsys):
    old, new = sides
    path = new / "veriid.toml"
    text = path.read_text()
    path.write_text(
        text.replace("retention_days = 90", 'retention_days = 90\nmax_in_flight = 4\nrate = "50/s"')
    )
    assert main(run(project, str(old), str(new))) == 0  # a limit discloses nothing more
    out = capsys.readouterr().out
    assert "~ max_in_flight: — → 4  [changed]" in out
    assert "~ rate: — → 50/s (burst 50)  [changed]" in out


def test_new_partner_operation_longer_retention_and_category_widen(sides, project, capsys):
    old, new = sides
    shutil.copy(new / "veriid.toml", new / "veriid-two.toml")
    path = new / "adreach.toml"
    text = path.read_text().replace("retention_days = 180", "retention_days = 365")
    path.write_text(text)
    assert main(run(project, str(old), str(new))) == 1
    out = capsys.readouterr().out
    assert "  + partner added: identity_verification, TH" in out
    assert "  + operation verify_identity added: POST" in out
    assert "~ retention_days: 180 → 365  [WIDENS: the partner keeps the data longer]" in out
    (new / "veriid-two.toml").unlink()
    path.write_text(text.replace("retention_days = 365", "retention_days = 180"))
    veriid = new / "veriid.toml"
    veriid.write_text(
        veriid.read_text().replace('"identity_verification"', '"background_check_aml"')
    )
    assert main(run(project, str(old), str(new))) == 1
    out = capsys.readouterr().out
    assert (
        "~ category: identity_verification → background_check_aml  [WIDENS: consents given "
        "for the new category now cover this partner]"
    ) in out
    (new / "veriid.toml").unlink()
    assert main(run(project, str(old), str(new))) == 0
    assert "  - partner removed: identity_verification  [narrows]" in capsys.readouterr().out


def test_an_invalid_side_is_a_usage_error_with_file_and_line(sides, project, capsys):
    old, new = sides
    path = new / "veriid.toml"
    path.write_text(path.read_text().replace('"keep"', '"plaintext"', 1))
    assert main(run(project, str(old), str(new))) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "unknown transform 'plaintext'" in err


def test_transform_ranking():
    order = ["drop", "pseudonym", "year", "mask", "keep"]
    assert [TRANSFORM_RANK[t] for t in order] == sorted(TRANSFORM_RANK[t] for t in order)
    assert TRANSFORM_RANK["age_band"] == TRANSFORM_RANK["year"]
    assert TRANSFORM_RANK["truncate_ip"] == TRANSFORM_RANK["mask"]


def test_added_with_drop_does_not_widen(sides, project):
    old, new = sides
    path = new / "lao-credit-bureau.toml"
    path.write_text(path.read_text().replace(OLD_FIELDS, OLD_FIELDS[:-2] + ', email = "drop" }'))
    base = project
    before = read_partners(str(old), partners_dir=project / "partners", base_dir=base)
    after = read_partners(str(new), partners_dir=project / "partners", base_dir=base)
    diff = PartnersDiff("a", "b", tuple(diff_partners(before, after)))
    assert [(c.what, c.effect) for c in diff.changes] == [("field email", "changes")]
    assert diff.exit_code == 0


# -- git revisions ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, project: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(project / "config.toml", root / "config.toml")
    shutil.copytree(project / "partners", root / "partners")
    git(root, "init", "-q")
    git(root, "add", "config.toml", "partners")
    git(root, "commit", "-q", "-m", "partners as onboarded")
    widen(root / "partners")
    git(root, "commit", "-q", "-am", "credit bureau gets more")
    return root


def test_two_git_revisions_of_partners(repo, capsys):
    code = main(["--config", str(repo / "config.toml"), "partners", "diff", "HEAD~1", "HEAD"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("partners: HEAD~1 → HEAD")
    assert "~ field uuid: pseudonym → keep  [WIDENS]" in out
    assert "+ field email added (keep)  [WIDENS]" in out
    assert "+ purpose research_development added  [WIDENS]" in out
    # The working tree against its own HEAD: nothing changed.
    assert main(["--config", str(repo / "config.toml"), "partners", "diff", "HEAD", "HEAD"]) == 0


def test_git_revision_errors_are_usage_errors(repo, capsys):
    config = ["--config", str(repo / "config.toml"), "partners", "diff"]
    assert main([*config, "no-such-rev", "HEAD"]) == 2
    assert "not a directory, and git could not read it" in capsys.readouterr().err
    assert main([*config, "--", "--output=/tmp/x", "HEAD"]) == 2
    path = repo / "partners" / "veriid.toml"
    path.write_text(
        path.read_text().replace('category = "identity_verification"', 'category = "x"')
    )
    git(repo, "commit", "-q", "-am", "broken")
    assert main([*config, "HEAD~1", "HEAD"]) == 2
    assert "HEAD:partners/veriid.toml:" in capsys.readouterr().err
