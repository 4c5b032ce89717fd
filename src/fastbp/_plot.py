class TrainingCurveDisplay: pass
