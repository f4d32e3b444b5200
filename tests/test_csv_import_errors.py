"""CSV import refuses ambiguous or hostile files, naming file, row and column, and
writes nothing (the import is all-or-nothing)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from assistant.errors import DataError
from assistant.hospital import import_csv_dir

FIXTURES = Path(__file__).parent / "fixtures" / "hospital" / "csv"


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "csv.sqlite"
    import_csv_dir(path, FIXTURES)
    return path


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    shutil.copytree(FIXTURES, folder)
    # good files that differ from the database, so a partial import would show
    doctors = folder / "doctors.csv"
    doctors.write_text(doctors.read_text(encoding="utf-8").replace("Dr ", "Doctor "), encoding="utf-8")
    return folder


def _refused(db: Path, folder: Path, pattern: str) -> None:
    before = _dump(db)
    for replace in (False, True):
        with pytest.raises(DataError, match=pattern):
            import_csv_dir(db, folder, replace=replace)
        assert _dump(db) == before


def _append_copy_of_row(path: Path, row: int) -> int:
    """Append a copy of data row ``row`` (spreadsheet numbering); returns the new row's number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.append(lines[row - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


@pytest.mark.parametrize(
    ("file", "column"),
    [("departments.csv", "code"), ("doctors.csv", "doctor_id"), ("wards.csv", "ward_id"),
     ("services.csv", "service_id"), ("clinic_sessions.csv", "doctor_id"), ("imaging_slots.csv", "room")],
)
def test_duplicate_id_in_one_file_is_refused(tmp_path: Path, db: Path, file: str, column: str) -> None:
    folder = _folder(tmp_path)
    new_row = _append_copy_of_row(folder / file, 2)
    _refused(db, folder, rf"{file} row {new_row} column '{column}': duplicate row \(.*\) already on row 2")


def test_duplicate_id_differing_in_other_columns_is_refused(tmp_path: Path, db: Path) -> None:
    folder = _folder(tmp_path)
    wards = folder / "wards.csv"
    lines = wards.read_text(encoding="utf-8").splitlines()
    lines.append(lines[1].replace(",12,6", ",40,1"))
    wards.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _refused(db, folder, rf"wards\.csv row {len(lines)} column 'ward_id': duplicate row \(ward_id=ENT-1\)")


def test_duplicated_header_column_is_refused(tmp_path: Path, db: Path) -> None:
    folder = _folder(tmp_path)
    wards = folder / "wards.csv"
    lines = wards.read_text(encoding="utf-8").splitlines()
    lines[0] += ",beds_total"
    lines[1:] = [line + ",999" for line in lines[1:]]
    wards.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _refused(db, folder, r"wards\.csv row 1 column 'beds_total': column appears twice \(columns 6 and 8\)")


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f"])
def test_nul_and_control_characters_are_refused(tmp_path: Path, db: Path, char: str) -> None:
    folder = _folder(tmp_path)
    wards = folder / "wards.csv"
    lines = wards.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("Cardiology Ward", f"Cardio{char}logy Ward")
    wards.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _refused(db, folder, r"wards\.csv row 3 column 'name_en': contains a NUL or other control character")


def test_nul_in_header_is_refused(tmp_path: Path, db: Path) -> None:
    folder = _folder(tmp_path)
    wards = folder / "wards.csv"
    wards.write_text("ward_id\x00,name_en\n", encoding="utf-8")
    _refused(db, folder, r"wards\.csv row 1: column 1 name contains a control character")


def test_huge_single_cell_file_names_row_1_and_column(tmp_path: Path, db: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "services.csv").write_text("x" * (50 * 1024 * 1024), encoding="utf-8")
    _refused(db, folder, r"services\.csv row 1 column '#1': cell longer than 131072 characters")


def test_huge_cell_in_a_later_row_names_its_row_and_column(tmp_path: Path, db: Path) -> None:
    folder = _folder(tmp_path)
    wards = folder / "wards.csv"
    lines = wards.read_text(encoding="utf-8").splitlines()
    lines.insert(3, 'W9,"' + "big\n" * 40_000 + '",病区,ENT,general,1,0')  # a quoted cell over many lines
    lines.append("W10,Ward ten,病区,ENT,general,1,0")
    wards.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _refused(db, folder, r"wards\.csv row 4 column 'name_en': cell longer than 131072 characters")


def test_row_numbers_count_records_not_lines(tmp_path: Path, db: Path) -> None:
    folder = _folder(tmp_path)
    wards = folder / "wards.csv"
    lines = wards.read_text(encoding="utf-8").splitlines()
    lines.insert(2, 'W9,"Ward\nnine",病区,ENT,general,1,0')
    lines.insert(3, "W10,Ward ten,病区,ENT,general,1,5")
    wards.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _refused(db, folder, r"wards\.csv row 4 column 'beds_occupied'")
