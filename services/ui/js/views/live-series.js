// One sensor's readings on the live chart: in time order, each instant once, whatever order they
// arrive in (the history of the last minutes and the stream race each other at every load).

/** How many of the latest spacings a sensor's period is the median of (an odd number). */
const PERIOD_SPACINGS = 21;

export class ReadingSeries {
  constructor() {
    this.ts = []; // Unix seconds, strictly increasing (uPlot draws from these two arrays)
    this.power = []; // W, beside their ts
  }

  /** Add a reading in its place; false when one of the same instant is already there. */
  insert(ts, power) {
    // Most readings are the newest yet: a look at the end settles them without a search.
    let low = 0;
    let high = this.ts.length;
    if (high && ts > this.ts[high - 1]) low = high;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.ts[middle] < ts) low = middle + 1;
      else high = middle;
    }
    if (this.ts[low] === ts) return false;
    this.ts.splice(low, 0, ts);
    this.power.splice(low, 0, power);
    return true;
  }

  /** Forget the readings before `oldest`, but keep the newest one: it is still power now. */
  dropBefore(oldest) {
    let count = 0;
    while (count < this.ts.length - 1 && this.ts[count] < oldest) count += 1;
    if (!count) return;
    this.ts.splice(0, count);
    this.power.splice(0, count);
  }

  lastTs() {
    return this.ts[this.ts.length - 1];
  }

  lastPower() {
    return this.power[this.power.length - 1] ?? 0;
  }

  /** The sensor's period: the median spacing of its latest readings (null with fewer than two). */
  period() {
    const spacings = [];
    for (let i = Math.max(1, this.ts.length - PERIOD_SPACINGS); i < this.ts.length; i += 1) spacings.push(this.ts[i] - this.ts[i - 1]);
    if (!spacings.length) return null;
    spacings.sort((a, b) => a - b);
    return spacings[spacings.length >> 1];
  }

  /** [[ts, W], ...] in time order. */
  pairs() {
    return this.ts.map((ts, i) => [ts, this.power[i]]);
  }
}
