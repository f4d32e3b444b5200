"""Static ingredients of the seeded demo hospital (names, wards, scanners, services).

Numbers are plausible for a ~600-bed Chinese tertiary (三级) general hospital; they
are demo values, not statistics of any real hospital.
"""

from __future__ import annotations

from datetime import time
from typing import NamedTuple

HOSPITAL_NAME_EN = "Demo General Hospital"
HOSPITAL_NAME_ZH = "示范综合医院"

#: Common Chinese surnames (hanzi, pinyin).
SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"),
    ("杨", "Yang"), ("赵", "Zhao"), ("黄", "Huang"), ("周", "Zhou"), ("吴", "Wu"),
    ("徐", "Xu"), ("孙", "Sun"), ("胡", "Hu"), ("朱", "Zhu"), ("高", "Gao"),
    ("林", "Lin"), ("何", "He"), ("郭", "Guo"), ("马", "Ma"), ("罗", "Luo"),
    ("梁", "Liang"), ("宋", "Song"), ("郑", "Zheng"), ("谢", "Xie"), ("韩", "Han"),
    ("唐", "Tang"), ("冯", "Feng"), ("于", "Yu"), ("董", "Dong"), ("萧", "Xiao"),
    ("程", "Cheng"), ("曹", "Cao"), ("袁", "Yuan"), ("邓", "Deng"), ("许", "Xu"),
    ("傅", "Fu"), ("沈", "Shen"), ("曾", "Zeng"), ("彭", "Peng"), ("吕", "Lyu"),
)  # fmt: skip

#: Given names (hanzi, pinyin).
GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("芳", "Fang"), ("伟", "Wei"), ("敏", "Min"), ("静", "Jing"), ("丽", "Li"),
    ("强", "Qiang"), ("磊", "Lei"), ("军", "Jun"), ("洋", "Yang"), ("勇", "Yong"),
    ("艳", "Yan"), ("杰", "Jie"), ("娟", "Juan"), ("涛", "Tao"), ("明", "Ming"),
    ("超", "Chao"), ("秀英", "Xiuying"), ("霞", "Xia"), ("平", "Ping"), ("刚", "Gang"),
    ("桂英", "Guiying"), ("建华", "Jianhua"), ("晓东", "Xiaodong"), ("海燕", "Haiyan"),
    ("志强", "Zhiqiang"), ("丹", "Dan"), ("婷", "Ting"), ("雪梅", "Xuemei"), ("宇", "Yu"),
    ("浩然", "Haoran"), ("思远", "Siyuan"), ("佳怡", "Jiayi"), ("文博", "Wenbo"),
    ("子涵", "Zihan"), ("欣怡", "Xinyi"), ("俊杰", "Junjie"), ("慧", "Hui"), ("颖", "Ying"),
    ("鹏", "Peng"), ("琳", "Lin"), ("国栋", "Guodong"), ("红梅", "Hongmei"), ("立新", "Lixin"),
    ("晓燕", "Xiaoyan"), ("振华", "Zhenhua"), ("玉兰", "Yulan"), ("建国", "Jianguo"),
    ("雅琴", "Yaqin"), ("博文", "Bowen"), ("梦瑶", "Mengyao"),
)  # fmt: skip

#: A few doctors with English names (all also consult in Chinese): (en, zh, department).
ENGLISH_DOCTORS: tuple[tuple[str, str, str], ...] = (
    ("Sarah Mitchell", "莎拉·米切尔", "GENMED"),
    ("James Carter", "詹姆斯·卡特", "CARDIO"),
    ("Emily Brown", "艾米丽·布朗", "PEDS"),
    ("Anna Schmidt", "安娜·施密特", "OBGYN"),
    ("David Miller", "大卫·米勒", "DERM"),
)

#: Doctors per department (sums to 120): busier departments have more.
DOCTORS_PER_DEPARTMENT: dict[str, int] = {
    "EMERG": 8, "GENMED": 10, "CARDIO": 8, "RESP": 6, "GASTRO": 6, "HEPATO": 3,
    "NEURO": 5, "ENDO": 4, "NEPHRO": 3, "INFECT": 3, "HEMAT": 3, "RHEUM": 3,
    "GENSURG": 5, "ORTHO": 5, "UROL": 3, "NEUROSURG": 3, "THORSURG": 3, "OBGYN": 7,
    "PEDS": 9, "DERM": 4, "OPHTH": 4, "ENT": 4, "DENT": 3, "PSYCH": 3, "ONCO": 3,
    "ANDRO": 2,
}  # fmt: skip

#: Relative demand for clinic slots (scales the share of pre-booked slots).
CLINIC_DEMAND: dict[str, float] = {
    "CARDIO": 1.1, "RESP": 1.1, "PEDS": 1.1, "GENMED": 1.0, "OBGYN": 1.0, "GASTRO": 1.0,
    "NEURO": 1.0, "ENDO": 0.95, "ORTHO": 0.95, "ONCO": 0.95, "OPHTH": 0.9, "ENT": 0.9,
    "DENT": 0.9, "DERM": 0.85, "HEPATO": 0.8, "NEPHRO": 0.8, "HEMAT": 0.8, "GENSURG": 0.85,
    "UROL": 0.8, "NEUROSURG": 0.7, "THORSURG": 0.7, "PSYCH": 0.8, "INFECT": 0.7,
    "RHEUM": 0.6, "ANDRO": 0.6, "EMERG": 0.1,
}  # fmt: skip

#: Departments that also run Saturday-morning clinics (GENMED and PEDS also Sunday).
WEEKEND_DEPARTMENTS: frozenset[str] = frozenset(
    {"GENMED", "PEDS", "OBGYN", "DENT", "DERM", "OPHTH", "ENT", "GASTRO", "CARDIO"}
)
SUNDAY_DEPARTMENTS: frozenset[str] = frozenset({"GENMED", "PEDS"})

#: Clinic half-days, hospital local time.
MORNING = (time(8, 0), time(12, 0))
AFTERNOON = (time(13, 30), time(17, 0))
SLOT_MINUTES = 15

#: Emergency department shifts, local time (end 00:00 = next midnight).
EMERGENCY_SHIFTS = ((time(0, 0), time(8, 0)), (time(8, 0), time(16, 0)), (time(16, 0), time(0, 0)))

#: Clinic half-days per week by title (chiefs see fewer, more complex patients).
HALF_DAYS_PER_WEEK = {"chief": 2, "associate_chief": 3, "attending": 4, "resident": 4}


class WardSpec(NamedTuple):
    """A demo ward: code, department, bed type, beds, target occupancy, names."""

    code: str
    department: str
    bed_type: str
    beds: int
    occupancy: float
    name_en: str
    name_zh: str


WARDS: tuple[WardSpec, ...] = (
    WardSpec("EM-OBS", "EMERG", "general", 20, 0.92, "Emergency Observation Ward", "急诊留观病区"),
    WardSpec("EICU", "EMERG", "icu", 10, 0.95, "Emergency ICU", "急诊重症监护室"),
    WardSpec("EM-ISO", "EMERG", "isolation", 6, 0.50, "Emergency Isolation Rooms", "急诊隔离间"),
    WardSpec("GM-1", "GENMED", "general", 36, 0.85, "General Medicine Ward", "全科病区"),
    WardSpec("CA-1", "CARDIO", "general", 40, 0.95, "Cardiology Ward", "心血管内科病区"),
    WardSpec("CCU", "CARDIO", "icu", 10, 0.95, "Coronary Care Unit", "冠心病监护室"),
    WardSpec("RE-1", "RESP", "general", 36, 0.97, "Respiratory Ward", "呼吸内科病区"),
    WardSpec("RICU", "RESP", "icu", 8, 1.00, "Respiratory ICU", "呼吸重症监护室"),
    WardSpec("GI-1", "GASTRO", "general", 28, 0.80, "Gastroenterology Ward", "消化内科病区"),
    WardSpec("HP-1", "HEPATO", "general", 18, 0.75, "Hepatology Ward", "肝病科病区"),
    WardSpec("NE-1", "NEURO", "general", 28, 0.88, "Neurology and Stroke Unit", "神经内科卒中单元"),
    WardSpec("EN-1", "ENDO", "general", 16, 0.70, "Endocrinology Ward", "内分泌科病区"),
    WardSpec("NP-1", "NEPHRO", "general", 18, 0.80, "Nephrology Ward", "肾内科病区"),
    WardSpec(
        "IN-ISO",
        "INFECT",
        "isolation",
        16,
        0.60,
        "Infectious Diseases Isolation Ward",
        "感染科隔离病区",
    ),
    WardSpec("IN-1", "INFECT", "general", 10, 0.55, "Infectious Diseases Ward", "感染科普通病区"),
    WardSpec("HE-1", "HEMAT", "general", 14, 0.90, "Haematology Ward", "血液科病区"),
    WardSpec(
        "HE-ISO",
        "HEMAT",
        "isolation",
        4,
        0.75,
        "Haematology Protective Isolation",
        "血液科层流病房",
    ),
    WardSpec("RH-1", "RHEUM", "general", 12, 0.60, "Rheumatology Ward", "风湿免疫科病区"),
    WardSpec("GS-1", "GENSURG", "general", 34, 0.85, "General Surgery Ward", "普通外科病区"),
    WardSpec("SICU", "GENSURG", "icu", 10, 0.80, "Surgical ICU", "外科重症监护室"),
    WardSpec("OR-1", "ORTHO", "general", 32, 0.90, "Orthopaedic Ward", "骨科病区"),
    WardSpec("UR-1", "UROL", "general", 18, 0.75, "Urology Ward", "泌尿外科病区"),
    WardSpec("NS-1", "NEUROSURG", "general", 16, 0.85, "Neurosurgery Ward", "神经外科病区"),
    WardSpec("NSICU", "NEUROSURG", "icu", 6, 0.85, "Neurosurgical ICU", "神经外科重症监护室"),
    WardSpec("TS-1", "THORSURG", "general", 14, 0.80, "Thoracic Surgery Ward", "胸外科病区"),
    WardSpec("OB-1", "OBGYN", "maternity", 28, 0.80, "Maternity Ward", "产科病区"),
    WardSpec("GY-1", "OBGYN", "general", 14, 0.70, "Gynaecology Ward", "妇科病区"),
    WardSpec("PE-1", "PEDS", "paediatric", 32, 0.93, "Paediatric Ward", "儿科病区"),
    WardSpec(
        "PICU", "PEDS", "icu", 8, 0.90, "Paediatric and Neonatal ICU", "儿童及新生儿重症监护室"
    ),
    WardSpec("DE-1", "DERM", "general", 6, 0.50, "Dermatology Beds", "皮肤科病床"),
    WardSpec("OP-1", "OPHTH", "general", 8, 0.55, "Ophthalmology Ward", "眼科病区"),
    WardSpec("ENT-1", "ENT", "general", 12, 0.65, "ENT Ward", "耳鼻咽喉科病区"),
    WardSpec(
        "DT-1",
        "DENT",
        "general",
        4,
        0.40,
        "Oral and Maxillofacial Surgery Beds",
        "口腔颌面外科病床",
    ),
    WardSpec("PS-1", "PSYCH", "general", 12, 0.85, "Psychiatry Ward", "精神心理科病区"),
    WardSpec("ON-1", "ONCO", "general", 22, 0.92, "Oncology Ward", "肿瘤科病区"),
)


class ImagingRoom(NamedTuple):
    """A scanner room: opening hours (local), block length and exams per block."""

    room: str
    modality: str
    opens: time
    closes: time  # 00:00 = open 24 h
    block_minutes: int
    capacity: int
    weekends: bool


IMAGING_ROOMS: tuple[ImagingRoom, ...] = (
    ImagingRoom("CT-1 (Emergency)", "CT", time(0, 0), time(0, 0), 30, 3, True),
    ImagingRoom("CT-2", "CT", time(8, 0), time(20, 0), 30, 3, False),
    ImagingRoom("MRI-1", "MRI", time(8, 0), time(22, 0), 30, 1, True),
    ImagingRoom("MRI-2", "MRI", time(8, 0), time(18, 0), 30, 1, False),
    ImagingRoom("US-1", "ultrasound", time(8, 0), time(17, 0), 30, 2, True),
    ImagingRoom("US-2", "ultrasound", time(8, 0), time(17, 0), 30, 2, False),
    ImagingRoom("US-3 (Obstetric)", "ultrasound", time(8, 0), time(17, 0), 30, 2, False),
)


class ServiceSpec(NamedTuple):
    """A service: code, department, names, descriptions, imaging modality if any."""

    code: str
    department: str
    name_en: str
    name_zh: str
    description_en: str
    description_zh: str
    modality: str | None = None


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("prenatal_checkup", "OBGYN", "Pre-natal check-up", "产前检查",
                "Routine pregnancy check-ups: blood pressure, weight, baby's heartbeat and growth, blood and urine tests.",
                "常规孕期检查：测血压、体重、胎心和胎儿发育，验血验尿。"),
    ServiceSpec("obstetric_ultrasound", "OBGYN", "Obstetric ultrasound", "产科B超",
                "Ultrasound scan of the baby in pregnancy, including the 20-week anomaly scan.",
                "孕期胎儿超声检查，包括孕20周左右的大排畸检查。", "ultrasound"),
    ServiceSpec("cervical_screening", "OBGYN", "Cervical screening (TCT/HPV)", "宫颈癌筛查（TCT/HPV）",
                "Smear test and HPV test to detect early changes of the cervix.",
                "宫颈细胞学和HPV检测，发现宫颈早期病变。"),
    ServiceSpec("gastroscopy", "GASTRO", "Gastroscopy", "胃镜检查",
                "A camera examination of the food pipe, stomach and duodenum, with or without sedation; fasting required.",
                "用内镜检查食管、胃和十二指肠，可选无痛；检查前需空腹。"),
    ServiceSpec("colonoscopy", "GASTRO", "Colonoscopy", "肠镜检查",
                "A camera examination of the large bowel after bowel preparation, for bleeding, polyps and cancer screening.",
                "肠道准备后用内镜检查大肠，用于便血、息肉和肠癌筛查。"),
    ServiceSpec("ecg", "CARDIO", "Electrocardiogram (ECG)", "心电图",
                "A quick recording of the heart's rhythm for palpitations, chest pain or a check-up.",
                "记录心脏节律的快速检查，用于心慌、胸痛或体检。"),
    ServiceSpec("holter", "CARDIO", "24-hour Holter monitoring", "24小时动态心电图",
                "A portable ECG recorder worn for a day to catch irregular heartbeats.",
                "随身佩戴一天的心电记录仪，捕捉间歇出现的心律失常。"),
    ServiceSpec("echocardiogram", "CARDIO", "Echocardiogram", "心脏彩超",
                "Ultrasound of the heart to look at pumping function and valves.",
                "心脏超声检查，观察心脏收缩功能和瓣膜。", "ultrasound"),
    ServiceSpec("lung_function", "RESP", "Lung function test", "肺功能检查",
                "Breathing tests for asthma, COPD and breathlessness.",
                "用于哮喘、慢阻肺和气短的呼吸功能检查。"),
    ServiceSpec("sleep_study", "RESP", "Sleep study", "睡眠监测",
                "Overnight monitoring of breathing for snoring and sleep apnoea.",
                "夜间睡眠呼吸监测，用于打鼾和睡眠呼吸暂停。"),
    ServiceSpec("fever_clinic", "INFECT", "Fever clinic", "发热门诊",
                "Separate clinic for patients with fever that may be infectious; open 24 hours.",
                "为可能有传染性的发热患者设立的独立门诊，24小时开放。"),
    ServiceSpec("hiv_test", "INFECT", "HIV and STI testing", "艾滋病及性病检测",
                "Confidential blood tests for HIV, syphilis and hepatitis.",
                "艾滋病、梅毒和肝炎的保密血液检测。"),
    ServiceSpec("liver_fibroscan", "HEPATO", "Liver stiffness scan (FibroScan)", "肝脏硬度检测",
                "A painless scan measuring liver scarring and fat.",
                "无痛检测肝脏纤维化和脂肪含量。", "ultrasound"),
    ServiceSpec("diabetes_education", "ENDO", "Diabetes education clinic", "糖尿病教育门诊",
                "Nurse-led advice on blood sugar testing, insulin, diet and exercise.",
                "护士指导血糖监测、胰岛素使用、饮食和运动。"),
    ServiceSpec("thyroid_ultrasound", "ENDO", "Thyroid ultrasound", "甲状腺B超",
                "Ultrasound of the neck for thyroid lumps and swelling.",
                "颈部超声检查甲状腺结节和肿大。", "ultrasound"),
    ServiceSpec("dialysis", "NEPHRO", "Haemodialysis", "血液透析",
                "Regular dialysis sessions for kidney failure.",
                "为肾衰竭患者提供规律血液透析。"),
    ServiceSpec("eeg", "NEURO", "EEG", "脑电图",
                "Recording of brain waves for fits, epilepsy and blackouts.",
                "记录脑电波，用于抽搐、癫痫和晕厥。"),
    ServiceSpec("memory_clinic", "NEURO", "Memory clinic", "记忆门诊",
                "Assessment of memory loss and dementia.",
                "评估记忆力下降和痴呆。"),
    ServiceSpec("ct_scan", "EMERG", "CT scan", "CT检查",
                "Computed tomography of the head, chest or abdomen; 24-hour emergency CT available.",
                "头部、胸部或腹部CT检查；24小时急诊CT。", "CT"),
    ServiceSpec("mri_scan", "NEURO", "MRI scan", "磁共振检查",
                "Magnetic resonance imaging of the brain, spine or joints; no metal implants allowed.",
                "脑、脊柱或关节的磁共振检查；体内有金属植入物需提前告知。", "MRI"),
    ServiceSpec("fracture_clinic", "ORTHO", "Fracture clinic", "骨折门诊",
                "Follow-up of broken bones, casts and splints.",
                "骨折、石膏和夹板的复诊。"),
    ServiceSpec("physiotherapy", "ORTHO", "Physiotherapy", "康复理疗",
                "Exercise and manual therapy after injuries and operations.",
                "受伤或手术后的运动和手法康复治疗。"),
    ServiceSpec("vaccination", "PEDS", "Child vaccination", "儿童预防接种",
                "Routine childhood vaccines and catch-up doses.",
                "常规儿童疫苗接种和补种。"),
    ServiceSpec("child_health_check", "PEDS", "Child health check", "儿童保健",
                "Growth, development, hearing and vision checks for babies and children.",
                "婴幼儿生长发育、听力和视力检查。"),
    ServiceSpec("eye_test", "OPHTH", "Eye test and glasses", "验光配镜",
                "Vision testing, prescription for glasses and myopia control for children.",
                "视力检查、验光配镜和儿童近视防控。"),
    ServiceSpec("hearing_test", "ENT", "Hearing test", "听力检查",
                "Audiometry for hearing loss and ringing in the ears.",
                "测听检查，用于听力下降和耳鸣。"),
    ServiceSpec("dental_cleaning", "DENT", "Dental cleaning", "洗牙",
                "Scaling and polishing for bleeding gums and tartar.",
                "龈上洁治，用于牙龈出血和牙结石。"),
    ServiceSpec("tooth_extraction", "DENT", "Tooth extraction", "拔牙",
                "Removal of decayed, broken or wisdom teeth.",
                "拔除龋坏、折断或阻生的智齿。"),
    ServiceSpec("skin_allergy_test", "DERM", "Skin allergy test", "皮肤过敏原检测",
                "Patch and prick tests to find the cause of allergic rashes.",
                "斑贴和点刺试验，查找过敏性皮疹的原因。"),
    ServiceSpec("psych_counselling", "PSYCH", "Psychological counselling", "心理咨询",
                "Talking therapy for stress, anxiety, low mood and sleep problems.",
                "针对压力、焦虑、情绪低落和睡眠问题的心理咨询。"),
    ServiceSpec("chemotherapy_day_unit", "ONCO", "Chemotherapy day unit", "日间化疗",
                "Same-day chemotherapy and infusions without an overnight stay.",
                "当天完成化疗和输液，无需住院过夜。"),
    ServiceSpec("health_checkup", "GENMED", "Health check-up package", "健康体检套餐",
                "Adult health screening: blood tests, ECG, chest X-ray and abdominal ultrasound.",
                "成人健康筛查：血液化验、心电图、胸片和腹部B超。"),
    ServiceSpec("abdominal_ultrasound", "GENMED", "Abdominal ultrasound", "腹部B超",
                "Ultrasound of the liver, gallbladder, kidneys and pancreas.",
                "肝、胆、肾、胰腺的超声检查。", "ultrasound"),
    ServiceSpec("semen_analysis", "ANDRO", "Semen analysis", "精液分析",
                "Laboratory test of sperm for couples trying to conceive.",
                "为备孕夫妇做的精子化验。"),
)  # fmt: skip
