-- test_sys: sp.sys services: hashing, directories, atomic output folders,
-- clocks, host info and child processes; each failure is a nil, msg, errno
-- tuple naming the path, and misuse raises.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local S = sp.sys

local read, write = T.read, T.write

-- ---- hashing ----------------------------------------------------------------
T.check(S.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256 of abc (FIPS 180-4)")
T.check(S.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256 of the empty string")
T.check(S.sha256("a\0b") ~= S.sha256("a"), "sha256 hashes embedded zeros")
local data = "tests/reference/data/Produc.csv"
local h = S.sha256_file(data)
T.check(h == S.sha256(read(data)), "sha256_file equals sha256 of the contents")
local p = io.popen("sha256sum " .. data)
local want = p and p:read("l")
if p then p:close() end
if want then T.check(h == want:match("^(%x+)"), "sha256_file matches sha256sum", h) end
local hv, hmsg = S.sha256_file("/nonexistent/x.csv")
T.check(hv == nil and hmsg == "/nonexistent/x.csv: cannot open file: No such file or directory",
        "sha256_file of a missing file: nil, message", tostring(hmsg))
T.checkerr("bad argument #1 .*string expected", S.sha256, {})

-- ---- directories --------------------------------------------------------------
local root = assert(S.mkdtemp("/tmp/sp_sys_test_"))
T.check(S.isdir(root) and root:find("^/tmp/sp_sys_test_......$"), "mkdtemp makes a new directory", root)
local other = assert(S.mkdtemp("/tmp/sp_sys_test_"))
T.check(other ~= root, "mkdtemp names are unique")
S.remove_tree(other)
local mv, mmsg, merr = S.mkdtemp("/nonexistent/dir/out.tmp-")
T.check(mv == nil and mmsg == "mkdtemp: /nonexistent/dir/out.tmp-XXXXXX: No such file or directory" and merr == 2,
        "mkdtemp in a missing directory: nil, message, errno", tostring(mmsg))

T.check(S.mkdir(root .. "/a") == true and S.isdir(root .. "/a"), "mkdir")
local v, msg, e = S.mkdir(root .. "/a")
T.check(v == nil and msg == "mkdir: " .. root .. "/a: File exists" and e == 17, "mkdir of an existing directory fails",
        tostring(msg))
T.check(S.mkdir(root .. "/a", { parents = true }) == true, "mkdir parents=true accepts an existing directory")
v, msg = S.mkdir(root .. "/x/y/z")
T.check(v == nil and msg:find("x/y/z: No such file or directory", 1, true), "mkdir without parents needs the parent",
        tostring(msg))
T.check(S.mkdir(root .. "/x/y/z", { parents = true }) and S.isdir(root .. "/x/y/z"), "mkdir parents=true")
T.check(S.mkdir(root .. "/p//q/", { parents = true }) and S.isdir(root .. "/p/q"), "mkdir parents with // and a trailing /")
write(root .. "/file.txt", "hello\n")
v, msg = S.mkdir(root .. "/file.txt/sub", { parents = true })
T.check(v == nil and msg:find("file.txt: Not a directory", 1, true), "mkdir parents through a file fails", tostring(msg))
T.check(S.mkdir(root .. "/m", { mode = tonumber("700", 8) }), "mkdir with a mode")
T.checkerr("sys%.mkdir: unknown option 'parent' %(expected parents, mode%)", S.mkdir, root .. "/q", { parent = true })
T.checkerr("sys%.mkdir: option 'parents' must be a boolean", S.mkdir, root .. "/q", { parents = "yes" })
T.checkerr("bad argument #1 .*string expected", S.mkdir, nil)

T.check(S.exists(root .. "/file.txt") and not S.isdir(root .. "/file.txt"), "exists and isdir on a file")
T.check(not S.exists(root .. "/nope") and not S.isdir(root .. "/nope"), "exists and isdir on a missing path")

write(root .. "/b.txt", "")
write(root .. "/B.txt", "")
write(root .. "/数据.csv", "")
local names = S.listdir(root)
T.check(table.concat(names, ",") == "B.txt,a,b.txt,file.txt,m,p,x,数据.csv", "listdir: sorted bytewise, no . or ..",
        table.concat(names, ","))
v, msg, e = S.listdir(root .. "/nope")
T.check(v == nil and msg == "listdir: " .. root .. "/nope: No such file or directory" and e == 2,
        "listdir of a missing directory", tostring(msg))
v, msg = S.listdir(root .. "/file.txt")
T.check(v == nil and msg:find("Not a directory", 1, true), "listdir of a file", tostring(msg))
T.check(#S.listdir(root .. "/x/y/z") == 0, "listdir of an empty directory")

T.check(S.realpath(root .. "/x/../a") == S.realpath(root) .. "/a", "realpath resolves ..")
v, msg = S.realpath(root .. "/nope/..")
T.check(v == nil and msg:find("^realpath: .*nope/%.%.: No such file"), "realpath of a missing path", tostring(msg))

-- Atomic output folder: write into a temporary sibling, then rename into place.
local target = root .. "/results"
local tmp = assert(S.mkdtemp(target .. ".tmp-"))
write(tmp .. "/results.json", "{}")
T.check(S.rename(tmp, target) and S.isdir(target) and not S.exists(tmp), "rename a directory into place")
T.check(read(target .. "/results.json") == "{}", "renamed directory keeps its files")
S.mkdir(root .. "/nonempty")
write(root .. "/nonempty/f", "x")
v, msg = S.rename(target, root .. "/nonempty")
T.check(v == nil and msg:find("^rename: " .. root:gsub("%p", "%%%0") .. "/results %-> .*/nonempty: Directory not empty"),
        "rename onto a non-empty directory fails", tostring(msg))
v, msg, e = S.rename(root .. "/nope", root .. "/nope2")
T.check(v == nil and msg:find("nope %-> .*nope2: No such file") and e == 2, "rename of a missing path", tostring(msg))
T.check(S.rename(root .. "/b.txt", root .. "/c.txt") and S.exists(root .. "/c.txt"), "rename a file")

-- exchange: both names stay, their contents trade places (RENAME_EXCHANGE).
S.mkdir(root .. "/ex1")
write(root .. "/ex1/one", "1")
T.check(S.exchange(root .. "/ex1", root .. "/nonempty") == true and S.exists(root .. "/ex1/f")
        and S.exists(root .. "/nonempty/one"), "exchange swaps two non-empty directories")
v, msg, e = S.exchange(root .. "/ex1", root .. "/nope")
T.check(v == nil and msg:find("^exchange: .*ex1 <%-> .*nope: No such file or directory") and e == 2,
        "exchange with a missing path", tostring(msg))
S.remove_tree(root .. "/ex1")
S.remove_tree(root .. "/nonempty")

-- fsync of files and directories; chmod and umask.
T.check(S.fsync(root .. "/c.txt") == true and S.fsync(root) == true, "fsync a file and a directory")
v, msg = S.fsync(root .. "/nope")
T.check(v == nil and msg == "fsync: " .. root .. "/nope: No such file or directory", "fsync of a missing path", tostring(msg))
local mask = S.umask()
T.check(math.type(mask) == "integer" and mask >= 0 and mask <= 511 and S.umask() == mask, "umask reads without changing")
local function mode_of(path)
  local pm = io.popen("stat -c %a '" .. path .. "'")
  local m = pm:read("l")
  pm:close()
  return m
end
local md = assert(S.mkdtemp(root .. "/mode-"))
T.check(mode_of(md) == "700" and S.chmod(md, tonumber("750", 8)) == true and mode_of(md) == "750",
        "chmod sets the mode of a mkdtemp folder", mode_of(md))
v, msg = S.chmod(root .. "/nope", 420)
T.check(v == nil and msg:find("^chmod: .*nope: No such file"), "chmod of a missing path", tostring(msg))
T.checkerr("bad argument #2 .*expected a mode", S.chmod, md, -1)

-- lock: exclusive between processes, released by unlock, by closing the
-- variable, and by the death of the holder.
local lockpath = root .. "/.x.lock"
local held = S.lock(lockpath)
T.check(getmetatable(held) ~= nil and S.exists(lockpath), "lock creates the lock file and returns a lock")
local function other_can_lock(path)
  local code = S.wait(S.spawn({ arg[-1], "-e",
    "os.exit(require('spillover').sys.lock(" .. string.format("%q", path) .. ", {wait = false}) and 0 or 3)" }))
  return code == 0
end
T.check(not other_can_lock(lockpath), "another process cannot take a held lock")
held:unlock()
held:unlock()
T.check(other_can_lock(lockpath), "unlock releases it (twice is harmless)")
do
  local scoped <close> = S.lock(md)
  T.check(scoped and not other_can_lock(md), "a directory can be locked")
end
T.check(other_can_lock(md), "a <close> variable releases the lock")
local holder = S.spawn({ arg[-1], "-e", "local l = require('spillover').sys.lock(" .. string.format("%q", lockpath) ..
  "); os.execute('sleep 30')" }, { group = true })
local t_wait = S.now()
while S.now() - t_wait < 10 and other_can_lock(lockpath) do S.wait(S.spawn({ "/bin/sleep", "0.05" })) end
T.check(S.lock(lockpath, { wait = false }) == false, "lock{wait = false} of a lock held elsewhere is false")
S.kill(holder, 9, { group = true })
S.wait(holder)
T.check(S.lock(lockpath, { wait = false }), "a killed holder's lock is free")
v, msg = S.lock(root .. "/nope/x.lock")
T.check(v == nil and msg == "lock: " .. root .. "/nope/x.lock: No such file or directory", "lock in a missing folder",
        tostring(msg))
T.checkerr("sys%.lock: unknown option 'wiat' %(expected wait%)", S.lock, lockpath, { wiat = false })
T.checkerr("sys%.lock: option 'wait' must be a boolean", S.lock, lockpath, { wait = 0 })

-- remove_tree: nested directories, files, and a symlink that must not be followed.
S.mkdir(root .. "/keep")
write(root .. "/keep/precious", "x")
S.mkdir(root .. "/tree/d1/d2", { parents = true })
for i = 1, 50 do write(root .. "/tree/d1/f" .. i, tostring(i)) end
write(root .. "/tree/d1/d2/g", "g")
os.execute("ln -s " .. root .. "/keep " .. root .. "/tree/link")
T.check(S.remove_tree(root .. "/tree") == true and not S.exists(root .. "/tree"), "remove_tree removes a tree")
T.check(S.exists(root .. "/keep/precious"), "remove_tree does not follow symbolic links")
os.execute("ln -s " .. root .. "/keep " .. root .. "/link2")
v, msg = S.remove_tree(root .. "/link2/")
T.check(v == true and not S.exists(root .. "/link2") and S.exists(root .. "/keep/precious"),
        "remove_tree of 'link/' removes the link, not the directory it points to", tostring(msg))
T.check(S.remove_tree(root .. "/c.txt") and not S.exists(root .. "/c.txt"), "remove_tree removes a single file")
v, msg, e = S.remove_tree(root .. "/nope")
T.check(v == nil and msg == "remove_tree: " .. root .. "/nope: No such file or directory" and e == 2,
        "remove_tree of a missing path", tostring(msg))
for _, bad in ipairs({ "/", ".", "..", "", "///" }) do
  v, msg = S.remove_tree(bad)
  T.check(v == nil and msg:find("^remove_tree: refusing to remove"), "remove_tree refuses '" .. bad .. "'", tostring(msg))
end

-- ---- clocks, host, terminal ----------------------------------------------------------
local t0 = S.now()
local x = 0
for i = 1, 1e6 do x = x + i end
local t1 = S.now()
T.check(type(t0) == "number" and t1 > t0 and t1 - t0 < 60, "now is monotonic with sub-second resolution",
        string.format("%.9f", t1 - t0))
T.check(S.time_iso(0) == "1970-01-01T00:00:00Z", "time_iso of the epoch")
T.check(S.time_iso(1700000000) == "2023-11-14T22:13:20Z", "time_iso of a known instant")
T.check(S.time_iso():match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"), "time_iso now")
T.check(type(S.hostname()) == "string" and #S.hostname() > 0, "hostname")
T.check(math.type(S.getpid()) == "integer" and S.getpid() > 1, "getpid")
T.check(type(S.isatty(1)) == "boolean" and S.isatty(99) == false, "isatty returns booleans")
T.checkerr("bad argument #1 .*expected a file descriptor", S.isatty, -1)
T.check(S.ncpu() >= 1, "ncpu")

-- ---- processes ----------------------------------------------------------------------
local pid = S.spawn({ "/bin/sh", "-c", "exit 3" })
T.check(math.type(pid) == "integer" and pid > 0, "spawn returns a pid")
T.check(S.wait(pid) == 3, "wait returns the exit code")
local out = root .. "/echo.out"
pid = S.spawn({ "/bin/echo", "hello", "two words", "$HOME" }, { stdout = out })
T.check(S.wait(pid) == 0 and read(out) == "hello two words $HOME\n", "argv is passed verbatim, no shell")
pid = S.spawn({ "echo", "via PATH" }, { stdout = out })
T.check(S.wait(pid) == 0 and read(out) == "via PATH\n", "spawn searches PATH and truncates the output file")
local both = root .. "/both.log"
pid = S.spawn({ "/bin/sh", "-c", "echo out; echo err >&2; echo out2" }, { stdout = both, stderr = both })
T.check(S.wait(pid) == 0 and read(both) == "out\nerr\nout2\n", "stdout and stderr into one file", read(both))
local errf = root .. "/err.log"
pid = S.spawn({ "/bin/sh", "-c", "echo oops >&2; exit 1" }, { stdout = out, stderr = errf })
T.check(S.wait(pid) == 1 and read(errf) == "oops\n" and read(out) == "", "stderr to its own file")
write(root .. "/in.txt", "from stdin\n")
pid = S.spawn({ "/bin/cat" }, { stdin = root .. "/in.txt", stdout = out })
T.check(S.wait(pid) == 0 and read(out) == "from stdin\n", "stdin from a file")

-- Several children and waitany.
local pids = {}
for i = 1, 3 do pids[S.spawn({ "/bin/sh", "-c", "exit " .. (10 + i) })] = 10 + i end
local seen = 0
for _ = 1, 3 do
  local wp, code = S.waitany()
  if pids[wp] == code then seen = seen + 1 end
  pids[wp] = nil
end
T.check(seen == 3, "waitany returns each pid with its exit code")
v, msg, e = S.waitany()
T.check(v == nil and msg:find("^waitany: No child processes") and e == 10, "waitany with no children", tostring(msg))

-- A killed child: 128 + signal, and the signal.
pid = S.spawn({ "/bin/sleep", "30" })
T.check(S.kill(pid, 9) == true, "kill")
local code, sig = S.wait(pid)
T.check(code == 137 and sig == 9, "wait of a killed child gives 128+signal and the signal", tostring(code))
v, msg = S.wait(pid)
T.check(v == nil and msg:find("^wait: pid %d+: No child processes"), "wait twice fails", tostring(msg))

-- Timeouts: false while the child runs, then its code.
pid = S.spawn({ "/bin/sleep", "30" })
local t2 = S.now()
T.check(S.wait(pid, 0.2) == false and S.now() - t2 >= 0.19, "wait with a timeout returns false when time is up")
T.check(S.wait(pid, 0) == false, "wait with timeout 0 polls")
T.check(S.waitany(0.05) == false, "waitany with a timeout returns false when time is up")
S.kill(pid, 9)
T.check(select(2, S.wait(pid, 5)) == 9, "wait with a timeout returns the code once the child ends")
T.checkerr("bad argument #2 .*expected a timeout in seconds", S.wait, pid, -1)

-- Process groups: kill{group = true} reaches the grandchildren too.
pid = S.spawn({ "/bin/sh", "-c", "sleep 30 & echo $! > " .. root .. "/grandchild; wait" }, { group = true })
local tg = S.now()
while not S.exists(root .. "/grandchild") and S.now() - tg < 10 do S.wait(S.spawn({ "/bin/sleep", "0.02" })) end
S.wait(S.spawn({ "/bin/sleep", "0.1" }))
local grandchild = tonumber(read(root .. "/grandchild"))
T.check(S.kill(pid, 9, { group = true }) == true and select(2, S.wait(pid)) == 9, "kill of a process group")
-- gone, or a zombie when no init reaps it
local function dead(p)
  local f = io.open("/proc/" .. p .. "/stat")
  if not f then return true end
  local st = f:read("a"):match("%) (%a)")
  f:close()
  return st == "Z" or st == "X"
end
local tk = S.now()
while grandchild and not dead(grandchild) and S.now() - tk < 5 do S.wait(S.spawn({ "/bin/sleep", "0.02" })) end
T.check(grandchild and dead(grandchild), "the group's other processes are killed too", tostring(grandchild))
pid = S.spawn({ "/bin/true" }, { group = true })
S.wait(pid)
v, msg = S.kill(pid, 9, { group = true })
T.check(v == nil and msg:find("^kill: process group %d+: No such process"), "kill of a gone group", tostring(msg))
T.checkerr("sys%.kill: unknown option 'grop'", S.kill, pid, 9, { grop = true })
T.checkerr("bad argument #1 .*expected a process id", S.kill, 1)

T.check(S.signame(9) == "SIGKILL" and S.signame(2) == "SIGINT" and S.signame(15) == "SIGTERM", "signame")
T.check(S.signame(0) == nil and S.signame(1000) == nil, "signame of a number that is no signal")

v, msg, e = S.spawn({ "/nonexistent/prog", "x" })
T.check(v == nil and msg == "spawn: /nonexistent/prog: No such file or directory" and e == 2,
        "spawn of a missing program", tostring(msg))
v, msg = S.spawn({ "/bin/echo" }, { stdout = root .. "/nope/out.txt" })
T.check(v == nil and msg == "spawn: cannot open stdout file: " .. root .. "/nope/out.txt: No such file or directory",
        "spawn with an unwritable stdout file names it", tostring(msg))
v, msg = S.spawn({ "/bin/cat" }, { stdin = root .. "/missing.in" })
T.check(v == nil and msg:find("cannot open stdin file: .*missing.in: No such file"), "spawn with a missing stdin file",
        tostring(msg))
T.checkerr("bad argument #1 .*expected a non%-empty list", S.spawn, {})
T.checkerr("sys%.spawn: argv%[2%] is a number %(expected a string%)", S.spawn, { "/bin/echo", 5 })
T.checkerr("sys%.spawn: unknown option 'stout' %(expected stdin, stdout, stderr, group%)", S.spawn, { "/bin/echo" }, { stout = "x" })
T.checkerr("sys%.spawn: option 'group' must be a boolean", S.spawn, { "/bin/echo" }, { group = 1 })
T.checkerr("sys%.spawn: option 'stdout' must be a file path", S.spawn, { "/bin/echo" }, { stdout = 1 })
T.checkerr("bad argument #1 .*table expected", S.spawn, "/bin/echo")
T.checkerr("bad argument #1 .*expected a process id", S.wait, 0)

-- Trapped signals end a wait (false, signal) instead of the process.  Last:
-- the trap stays for the rest of this process.
T.check(S.trap_signals() == true, "trap_signals")
pid = S.spawn({ "/bin/sh", "-c", "kill -INT " .. S.getpid() .. "; exec sleep 30" })
local r1, r2 = S.wait(pid)
T.check(r1 == false and r2 == 2, "a trapped SIGINT ends a wait with false, 2", tostring(r1) .. " " .. tostring(r2))
T.check(S.wait(pid, 0.05) == false, "the signal is reported once")
S.kill(pid, 9)
S.wait(pid)

T.check(S.remove_tree(root) and not S.exists(root), "cleanup")
T.done()
