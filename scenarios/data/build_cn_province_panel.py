#!/usr/bin/env python3
"""Build scenarios/data/cn_province_panel.csv: the tidy Chinese provincial panel.

Left join, on (adcode, year), of the 2011-2022 panel (digital finance, GDP,
population, fiscal spending, structure, urbanisation, region) with the
2010-2023 R&D / patents / budget file, keeping the panel's years.  Columns that
the two files share (province names) are taken once.  Then, by adcode, the
National Big Data Comprehensive Pilot Zones (cn_bigdata_pilot_zones.csv):
first_treat (first full year under the pilot, 0 = never), its approval-year
variant first_treat_approval (the robustness coding), and
pilot = 1 from first_treat on.  Plain stdlib, so the file
can be rebuilt anywhere: python3 build_cn_province_panel.py SHARED_DATA_DIR
"""
import csv
import sys
from pathlib import Path

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../../../shared/data")
out = Path(__file__).with_name("cn_province_panel.csv")

with open(src / "cn_province_panel_2011_2022.csv", encoding="utf-8") as f:
    panel = list(csv.DictReader(f))
with open(src / "cn_province_rd_patents_budget_2010_2023.csv", encoding="utf-8") as f:
    rd = {(r["adcode"], r["year"]): r for r in csv.DictReader(f)}

with open(src / "cn_bigdata_pilot_zones.csv", encoding="utf-8") as f:
    pilot = {r["adcode"]: r for r in csv.DictReader(f)}

shared = {"adcode", "province", "province_en", "year"}
rd_cols = [c for c in next(iter(rd.values())).keys() if c not in shared]
pilot_cols = ["first_treat", "first_treat_approval", "pilot"]
cols = list(panel[0].keys()) + rd_cols + pilot_cols

with open(out, "w", encoding="utf-8", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(cols)
    for row in panel:
        extra = rd.get((row["adcode"], row["year"]))
        if extra is None:
            sys.exit(f"no R&D row for {row['province_en']} {row['year']}")
        z = pilot.get(row["adcode"])
        if z is None:
            sys.exit(f"no pilot-zone row for {row['province_en']}")
        g = int(z["first_treat"])
        on = 1 if g > 0 and int(row["year"]) >= g else 0
        w.writerow([row[c] for c in panel[0].keys()] + [extra[c] for c in rd_cols] +
                   [g, int(z["first_treat_approval_year"]), on])
print(f"wrote {out} ({len(panel)} rows, {len(cols)} columns)")
