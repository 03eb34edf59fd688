//! SQL functions the engine replaces with faster equivalents of DataFusion's own.
//!
//! Every history timestamp is `Timestamp(Microsecond, "UTC")` (Delta's one timestamp type).
//! DataFusion's `date_trunc` takes its integer fast path only for timestamps without a time
//! zone; with one, even UTC, it converts every row through chrono-tz (several hundred ns a row,
//! most of an hourly roll-up's time). In UTC the local time is the instant itself, so truncating
//! the bare values gives exactly the same answer: [`UtcDateTrunc`] strips a UTC zone, lets
//! DataFusion's `date_trunc` take its fast path, and puts the zone back. Other zones go through
//! unchanged.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray};
use deltalake::arrow::datatypes::{
    DataType, Field, FieldRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use deltalake::datafusion::common::{Result, ScalarValue};
use deltalake::datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use deltalake::datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use deltalake::datafusion::prelude::SessionContext;

/// Registers the engine's functions in `ctx`, in place of DataFusion's of the same names.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(UtcDateTrunc {
        inner: deltalake::datafusion::functions::datetime::date_trunc(),
    }));
}

/// Whether `tz` names UTC itself (not merely a zone that is at +00:00 part of the year).
fn is_utc(tz: &str) -> bool {
    tz.eq_ignore_ascii_case("UTC") || tz.eq_ignore_ascii_case("Etc/UTC") || tz == "+00:00"
}

/// `array` (a timestamp array) with its time zone set to `tz`, without copying the values.
fn with_zone(array: &ArrayRef, tz: Option<Arc<str>>) -> ArrayRef {
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => Arc::new(
            array
                .as_primitive::<TimestampSecondType>()
                .clone()
                .with_timezone_opt(tz),
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => Arc::new(
            array
                .as_primitive::<TimestampMillisecondType>()
                .clone()
                .with_timezone_opt(tz),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Arc::new(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone_opt(tz),
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Arc::new(
            array
                .as_primitive::<TimestampNanosecondType>()
                .clone()
                .with_timezone_opt(tz),
        ),
        _ => array.clone(),
    }
}

/// `date_trunc` with an integer path for UTC timestamps (see the module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDateTrunc {
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let utc = match args.args.get(1) {
            Some(ColumnarValue::Array(a)) => match a.data_type() {
                DataType::Timestamp(_, Some(tz)) if is_utc(tz) => Some(tz.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(tz) = utc else {
            return self.inner.invoke_with_args(args);
        };
        if let Some(ColumnarValue::Array(a)) = args.args.get_mut(1) {
            *a = with_zone(a, None);
        }
        if let Some(f) = args.arg_fields.get_mut(1) {
            let t = bare(f.data_type());
            *f = Arc::new(f.as_ref().clone().with_data_type(t));
        }
        let t = bare(args.return_field.data_type());
        args.return_field = Arc::new(Field::clone(&args.return_field).with_data_type(t));
        Ok(match self.inner.invoke_with_args(args)? {
            ColumnarValue::Array(a) => ColumnarValue::Array(with_zone(&a, Some(tz))),
            ColumnarValue::Scalar(s) => ColumnarValue::Scalar(zoned_scalar(s, tz)),
        })
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(input)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// A timestamp type without its zone.
fn bare(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, None),
        other => other.clone(),
    }
}

fn zoned_scalar(s: ScalarValue, tz: Arc<str>) -> ScalarValue {
    match s {
        ScalarValue::TimestampSecond(v, _) => ScalarValue::TimestampSecond(v, Some(tz)),
        ScalarValue::TimestampMillisecond(v, _) => ScalarValue::TimestampMillisecond(v, Some(tz)),
        ScalarValue::TimestampMicrosecond(v, _) => ScalarValue::TimestampMicrosecond(v, Some(tz)),
        ScalarValue::TimestampNanosecond(v, _) => ScalarValue::TimestampNanosecond(v, Some(tz)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{RecordBatch, TimestampMicrosecondArray};
    use deltalake::arrow::datatypes::Schema;
    use deltalake::datafusion::datasource::MemTable;

    use super::*;

    /// The same answers as DataFusion's own `date_trunc`, for every granularity, in UTC and in
    /// a zone with daylight saving time.
    #[tokio::test]
    async fn same_answers_as_datafusion() {
        // 1970 to 2050, a prime number of seconds apart, so every field varies.
        let values: Vec<i64> = (0..5_000i64)
            .map(|i| i * 504_127_003_000 + 123_456)
            .collect();
        for tz in ["UTC", "+00:00", "Europe/Paris"] {
            let array = TimestampMicrosecondArray::from(values.clone()).with_timezone(tz);
            let schema = Arc::new(Schema::new(vec![Field::new(
                "t",
                array.data_type().clone(),
                false,
            )]));
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(array)]).expect("batch");
            let table = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table"));
            let plain = SessionContext::new();
            plain.register_table("t", table.clone()).expect("register");
            let ours = SessionContext::new();
            register(&ours);
            ours.register_table("t", table).expect("register");
            for g in [
                "microsecond",
                "millisecond",
                "second",
                "minute",
                "hour",
                "day",
                "week",
                "month",
                "quarter",
                "year",
            ] {
                let sql = format!(
                    "SELECT date_trunc('{g}', t) AS d, date_trunc('{g}', \
                     arrow_cast('2024-03-31T02:30:00Z', 'Timestamp(Microsecond, Some(\"{tz}\"))')) \
                     AS s FROM t"
                );
                let a = plain
                    .sql(&sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run");
                let b = ours
                    .sql(&sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run");
                assert_eq!(a, b, "{g} in {tz}");
                assert_eq!(a[0].schema(), b[0].schema(), "{g} in {tz}");
            }
        }
    }
}
