-- lakebase.sha256 (the C core's SHA-256), checked against known vectors and sha256sum.
local sha256 = require("lakebase.sha256")

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("lakebase.sha256", function()
  it("matches the FIPS 180-2 test vectors", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", sha256.hex(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", sha256.hex("abc"))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      sha256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
  end)

  it("handles every padding boundary like sha256sum", function()
    local tmp = os.tmpname()
    for _, n in ipairs({ 1, 55, 56, 57, 63, 64, 65, 119, 120, 1000 }) do
      local s = {}
      for i = 1, n do s[i] = string.char((i * 7 + n) % 256) end
      s = table.concat(s)
      local f = assert(io.open(tmp, "wb")); f:write(s); f:close()
      local p = io.popen("sha256sum " .. sh_quote(tmp))
      local want = p:read("*a"):match("^(%x+)")
      p:close()
      assert.equal(want, sha256.hex(s), "length " .. n)
    end
    os.remove(tmp)
  end)

  it("rejects a non-string", function()
    assert.has_error(function() sha256.hex(42) end, "bad argument #1 to 'sha256.hex' (string expected, got number)")
  end)
end)
