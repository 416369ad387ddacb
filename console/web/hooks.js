// Small hooks the pages share: polling a JSON endpoint while the page is shown.
import { useEffect, useState } from 'preact/hooks';
import { getJson } from './api.js';

/** Fetches `path` now and every `everyMs`; answers { data, error }. A slow answer is never overlapped by the next. */
export function usePoll(path, everyMs) {
  const [state, setState] = useState({ data: null, error: null });
  useEffect(() => {
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      try {
        const data = await getJson(path);
        if (!stopped) setState({ data, error: null });
      } catch (error) {
        if (!stopped) setState((s) => ({ data: s.data, error }));
      }
      if (!stopped) timer = setTimeout(tick, everyMs);
    };
    tick();
    return () => { stopped = true; clearTimeout(timer); };
  }, [path, everyMs]);
  return state;
}
