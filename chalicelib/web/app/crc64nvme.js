// CRC64NVME, S3's checksum for multipart uploads (as awscrt.checksums.crc64nvme):
// polynomial 0xad93d23594c93659, reflected (0x9a6c9329ac4bc9b5), initial value and
// final xor all ones. Table-driven, slicing-by-8, on two 32-bit halves (BigInt is
// only used at the edges: it is far too slow per byte).

const POLY_HI = 0x9a6c9329;
const POLY_LO = 0xac4bc9b5;

// Eight tables of 256 entries, the high and low halves apart: T[k * 256 + n].
const TABLE_HI = new Uint32Array(8 * 256);
const TABLE_LO = new Uint32Array(8 * 256);

for (let n = 0; n < 256; n++) {
  let hi = 0;
  let lo = n;
  for (let bit = 0; bit < 8; bit++) {
    const odd = lo & 1;
    lo = ((lo >>> 1) | (hi << 31)) >>> 0;
    hi = hi >>> 1;
    if (odd) {
      hi = (hi ^ POLY_HI) >>> 0;
      lo = (lo ^ POLY_LO) >>> 0;
    }
  }
  TABLE_HI[n] = hi;
  TABLE_LO[n] = lo;
}
for (let k = 1; k < 8; k++) {
  for (let n = 0; n < 256; n++) {
    const hi = TABLE_HI[(k - 1) * 256 + n];
    const lo = TABLE_LO[(k - 1) * 256 + n];
    const index = lo & 0xff;
    TABLE_HI[k * 256 + n] = ((hi >>> 8) ^ TABLE_HI[index]) >>> 0;
    TABLE_LO[k * 256 + n] = (((lo >>> 8) | (hi << 24)) ^ TABLE_LO[index]) >>> 0;
  }
}

/** A running CRC64NVME: feed it bytes in order with update(), read value/base64 at any point. */
export class Crc64Nvme {
  /** @param {bigint} [previous] the value of the bytes before (0n: none), as awscrt's `previous_crc64`. */
  constructor(previous = 0n) {
    const inverted = ~previous & 0xffffffffffffffffn;
    this.hi = Number(inverted >> 32n) >>> 0;
    this.lo = Number(inverted & 0xffffffffn) >>> 0;
  }

  /** @param {Uint8Array} bytes */
  update(bytes) {
    let hi = this.hi;
    let lo = this.lo;
    let i = 0;
    const end8 = bytes.length - (bytes.length % 8);
    const T_HI = TABLE_HI;
    const T_LO = TABLE_LO;
    for (; i < end8; i += 8) {
      const a = (lo ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0;
      const b = (hi ^ (bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24))) >>> 0;
      const i7 = 7 * 256 + (a & 0xff);
      const i6 = 6 * 256 + ((a >>> 8) & 0xff);
      const i5 = 5 * 256 + ((a >>> 16) & 0xff);
      const i4 = 4 * 256 + (a >>> 24);
      const i3 = 3 * 256 + (b & 0xff);
      const i2 = 2 * 256 + ((b >>> 8) & 0xff);
      const i1 = 256 + ((b >>> 16) & 0xff);
      const i0 = b >>> 24;
      hi = T_HI[i7] ^ T_HI[i6] ^ T_HI[i5] ^ T_HI[i4] ^ T_HI[i3] ^ T_HI[i2] ^ T_HI[i1] ^ T_HI[i0];
      lo = T_LO[i7] ^ T_LO[i6] ^ T_LO[i5] ^ T_LO[i4] ^ T_LO[i3] ^ T_LO[i2] ^ T_LO[i1] ^ T_LO[i0];
    }
    for (; i < bytes.length; i++) {
      const index = (lo ^ bytes[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ T_LO[index];
      hi = (hi >>> 8) ^ T_HI[index];
    }
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
    return this;
  }

  /** The checksum of the bytes so far, as an unsigned 64-bit BigInt. */
  get value() {
    return ((BigInt(~this.hi >>> 0) << 32n) | BigInt(~this.lo >>> 0)) & 0xffffffffffffffffn;
  }

  /** What S3 and the API take: base64 of the 8 big-endian bytes. */
  get base64() {
    const bytes = new Uint8Array(8);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, ~this.hi >>> 0);
    view.setUint32(4, ~this.lo >>> 0);
    return btoa(String.fromCharCode(...bytes));
  }
}

/** The CRC64NVME of `bytes` (continuing from `previous`), as a BigInt. */
export function crc64nvme(bytes, previous = 0n) {
  return new Crc64Nvme(previous).update(bytes).value;
}
