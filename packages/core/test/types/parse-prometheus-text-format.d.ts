// The package ships no types; this is the subset the tests read.
declare module 'parse-prometheus-text-format' {
  interface PrometheusSample {
    readonly value?: string
    readonly labels?: Record<string, string>
    readonly buckets?: Record<string, string>
    readonly count?: string
    readonly sum?: string
  }
  interface PrometheusFamily {
    readonly name: string
    readonly help: string
    readonly type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
    readonly metrics: readonly PrometheusSample[]
  }
  function parsePrometheusTextFormat(text: string): PrometheusFamily[]
  export = parsePrometheusTextFormat
}
