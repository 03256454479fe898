-- Hostile: read a file outside the scenario's folder (the test puts a
-- symlink passwd.csv -> /etc/passwd in the folder for the second read).
local ok, err = pcall(sp.read_csv, "/etc/passwd", { header = false, delimiter = ":" })
assert(not ok, "read /etc/passwd")
sp.read_csv("passwd.csv", { header = false, delimiter = ":" })
